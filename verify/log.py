"""The Verifications log of a tenant: the list (filters, keyset pages), the conversion rate per
day, and the CSV export's rows. Exports and the page share the filters, like the message log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import django_filters
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate

from messaging.forms.fields import PhoneField
from tenants.exports import IsoUtc
from tenants.filters import CreatedRangeFilterSet, DateRangeForm
from tenants.models import Tenant
from tenants.phones import form_phone_region_set, tenant_phone_region

from .models import Channel, ConsentForm, Verification, VerificationStatus

VERIFICATION_COLUMNS = ("sid", "to", "channel", "status", "created_at", "updated_at")
CHUNK_SIZE = 2000
CONVERSION_DAYS = 14


def verification_list(*, tenant: Tenant) -> QuerySet[Verification]:
    return Verification.objects.for_tenant(tenant).select_related("form", "form_version").order_by("-created_at", "-id")


class PhoneFilter(django_filters.CharFilter):
    field_class = PhoneField


class VerificationFilter(CreatedRangeFilterSet):
    status = django_filters.ChoiceFilter(choices=VerificationStatus.choices, empty_label="Any status")
    channel = django_filters.ChoiceFilter(choices=Channel.choices, empty_label="Any channel")
    fallback = django_filters.BooleanFilter(label="Fallback code")
    phone = PhoneFilter(label="Number", method="filter_phone", help_text="")
    # The tenant's own forms only (set in __init__): another tenant's id is an invalid choice.
    form = django_filters.ModelChoiceFilter(label="Form", queryset=ConsentForm.objects.none(), empty_label="Any form")

    class Meta:
        model = Verification
        fields: list[str] = []
        form = DateRangeForm

    def __init__(self, data=None, *args, tenant, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.filters["form"].queryset = ConsentForm.objects.for_tenant(tenant).order_by("title", "id")

    def filter_phone(self, queryset, name, value):
        return queryset.filter(Q(to=value) | Q(phone=value))


def verification_filtered(*, tenant: Tenant, params) -> tuple[VerificationFilter, QuerySet[Verification]]:
    """The filter form bound to `params` and the verifications it selects (none while invalid)."""
    filters = VerificationFilter(params or None, queryset=verification_list(tenant=tenant), tenant=tenant)
    form_phone_region_set(filters.form, region=tenant_phone_region(tenant))
    if filters.is_bound and not filters.is_valid():
        return filters, filters.queryset.none()
    return filters, filters.qs


@dataclass(frozen=True)
class ConversionDay:
    day: date
    started: int
    approved: int

    @property
    def rate(self) -> float | None:
        return self.approved / self.started if self.started else None

    @property
    def rate_display(self) -> str:
        return "—" if self.rate is None else f"{self.rate:.0%}"


def conversion_by_day(*, tenant: Tenant, now: datetime, days: int = CONVERSION_DAYS) -> list[ConversionDay]:
    """Verifications started and approved per UTC day (by the day they started), oldest first,
    every day of the window present (one grouped query)."""
    start = datetime.combine(now.astimezone(UTC).date() - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)
    rows = (
        Verification.objects.for_tenant(tenant)
        .filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(started=Count("id"), approved=Count("id", filter=Q(status=VerificationStatus.APPROVED)))
    )
    found = {row["day"]: row for row in rows}
    return [
        ConversionDay(day, found.get(day, {}).get("started", 0), found.get(day, {}).get("approved", 0))
        for day in (start.date() + timedelta(days=n) for n in range(days))
    ]


def verification_rows(qs: QuerySet[Verification], *, show: Callable[[str], str]) -> Iterator[tuple]:
    """Rows of the export in `VERIFICATION_COLUMNS` order (a contract: never reorder)."""
    values = qs.values_list("sid", "to", "channel", "status", IsoUtc("created_at"), IsoUtc("updated_at"))
    for sid, to, channel, status, created, updated in values.iterator(CHUNK_SIZE):
        yield sid, show(to), channel, status, created, updated
