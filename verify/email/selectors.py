"""The email pages' reads: the email log and the suppression list with their filters (shared by
the pages and their CSV exports), one email with its events, and the support overview's
per-tenant email figures."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import django_filters
from django.db.models import Count, Q, QuerySet

from tenants.filters import CreatedRangeFilterSet, DateRangeForm
from tenants.models import Tenant

from ..models import EmailEvent, EmailMessage, EmailSuppression
from .sending import CONFIG_STATUSES, provider_problem_current

SUPPORT_WINDOW = timedelta(hours=24)


class EmailFilter(CreatedRangeFilterSet):
    """Date range, status, category and recipient: each narrows an indexed column."""

    status = django_filters.ChoiceFilter(choices=EmailMessage.Status.choices, empty_label="Any status")
    category = django_filters.ChoiceFilter(choices=EmailMessage.Category.choices, empty_label="Any kind")
    to = django_filters.CharFilter(label="Recipient", method="filter_to")

    class Meta:
        model = EmailMessage
        fields: list[str] = []
        form = DateRangeForm

    def filter_to(self, queryset, name, value):
        return queryset.filter(to_email=value.strip().lower())


class SuppressionFilter(CreatedRangeFilterSet):
    reason = django_filters.ChoiceFilter(choices=EmailSuppression.Reason.choices, empty_label="Any reason")
    email = django_filters.CharFilter(label="Address", method="filter_email")

    class Meta:
        model = EmailSuppression
        fields: list[str] = []
        form = DateRangeForm

    def filter_email(self, queryset, name, value):
        return queryset.filter(email=value.strip().lower())


def _filtered(filter_class, *, params, queryset):
    filters = filter_class(params or None, queryset=queryset)
    if filters.is_bound and not filters.is_valid():
        return filters, queryset.none()
    return filters, filters.qs


def email_filtered(*, tenant: Tenant, params) -> tuple[EmailFilter, QuerySet[EmailMessage]]:
    """The email log's filter form bound to `params` and the tenant's emails it selects (none
    while the filters are invalid), for the page and its export alike."""
    return _filtered(EmailFilter, params=params, queryset=EmailMessage.objects.for_tenant(tenant))


def suppression_filtered(*, tenant: Tenant, params) -> tuple[SuppressionFilter, QuerySet[EmailSuppression]]:
    """The suppression list's filter form and the tenant's entries it selects."""
    return _filtered(SuppressionFilter, params=params, queryset=EmailSuppression.objects.for_tenant(tenant))


def email_event_list(*, tenant: Tenant, email: EmailMessage) -> list[EmailEvent]:
    """An email's events from SendGrid, in the order they happened."""
    return list(EmailEvent.objects.for_tenant(tenant).filter(message=email).order_by("occurred_at", "id"))


# --------------------------------------------------------------------------- support overview


@dataclass(frozen=True)
class EmailHealth:
    """One tenant's email over the last 24 h, for the support overview."""

    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    config_error: str = ""  # the open SendGrid configuration problem, when it failed this tenant's email


def email_health_collect(*, now: datetime) -> dict[int, EmailHealth]:
    """Tenant id -> its email figures over 24 h, in one grouped query."""
    problem = provider_problem_current()
    rows = (
        EmailMessage.all_tenants.filter(created_at__gte=now - SUPPORT_WINDOW)
        .values("tenant_id")
        .annotate(
            sent=Count("id", filter=~Q(status__in=[EmailMessage.Status.FAILED, EmailMessage.Status.SUPPRESSED])),
            failed=Count("id", filter=Q(status=EmailMessage.Status.FAILED)),
            suppressed=Count("id", filter=Q(status=EmailMessage.Status.SUPPRESSED)),
            config_failed=Count(
                "id",
                filter=Q(status=EmailMessage.Status.FAILED)
                & (Q(error_status__in=CONFIG_STATUSES) | Q(error__contains="SENDGRID_API_KEY")),
            ),
        )
    )
    health: dict[int, EmailHealth] = defaultdict(EmailHealth)
    for row in rows:
        affected = problem is not None and row["config_failed"] > 0
        health[row["tenant_id"]] = EmailHealth(
            sent=row["sent"],
            failed=row["failed"],
            suppressed=row["suppressed"],
            config_error=problem.message if affected else "",
        )
    return dict(health)
