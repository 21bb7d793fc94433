"""The call log: a tenant's calls, newest first, with filters; one call with its timeline and
recordings; what the place-a-call form offers."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.http import Http404

from messaging.forms.fields import PhoneField
from messaging.number_refs import number_from_ref
from tenants.filters import CreatedRangeFilterSet, DateRangeForm
from tenants.models import PhoneNumber, Tenant
from tenants.phones import form_phone_region_set, tenant_phone_region
from tenants.scoping import get_scoped_or_404

from ..models import Call, CallEvent, CallFlow, Recording

__all__ = [
    "CallFilter",
    "call_detail",
    "call_filtered",
    "call_flow_versions_list",
    "call_list",
    "recording_get",
    "voice_numbers_list",
]


def call_list(*, tenant: Tenant) -> QuerySet[Call]:
    """The tenant's calls, newest first; filters and keyset paging narrow it."""
    return Call.objects.for_tenant(tenant).order_by("-created_at", "-id")


class _PhoneFilter(django_filters.CharFilter):
    field_class = PhoneField


class CallFilter(CreatedRangeFilterSet):
    """Date range (UTC days), direction, status and a number (from or to)."""

    direction = django_filters.ChoiceFilter(choices=Call.Direction.choices, empty_label="Any direction")
    status = django_filters.ChoiceFilter(choices=Call.Status.choices, empty_label="Any status")
    phone = _PhoneFilter(label="Number (from or to)", method="filter_phone", help_text="")
    # A number by its opaque reference (`messaging.number_refs`): how links name a number
    # without putting it in the URL (the numbers page's lookup, a number's history).
    number = django_filters.CharFilter(method="filter_number", widget=forms.HiddenInput)

    class Meta:
        model = Call
        fields: list[str] = []
        form = DateRangeForm

    def __init__(self, data=None, *args, tenant: Tenant, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.tenant = tenant

    def filter_phone(self, queryset, name, value):
        return queryset.filter(Q(from_number=value) | Q(to_number=value))

    def filter_number(self, queryset, name, value):
        try:
            phone = number_from_ref(value, tenant=self.tenant)
        except Http404:
            return queryset.none()
        return self.filter_phone(queryset, name, phone)


def call_filtered(*, tenant: Tenant, params) -> tuple[CallFilter, QuerySet[Call]]:
    """The filter form bound to `params` and the calls it selects (none while it is invalid),
    for the list page and its export alike."""
    filters = CallFilter(params or None, queryset=call_list(tenant=tenant), tenant=tenant)
    form_phone_region_set(filters.form, region=tenant_phone_region(tenant))
    if filters.is_bound and not filters.is_valid():
        return filters, filters.queryset.none()
    return filters, filters.qs


def call_detail(*, tenant: Tenant, call_id: int) -> tuple[Call, list[CallEvent], list[Recording]]:
    """One call of `tenant` (404 for anyone else's), its timeline (oldest first) and recordings."""
    call = get_scoped_or_404(Call.objects.select_related("flow_version__flow"), tenant=tenant, pk=call_id)
    events = list(CallEvent.objects.for_tenant(tenant).filter(call=call).order_by("occurred_at", "id"))
    recordings = list(Recording.objects.for_tenant(tenant).filter(call=call).order_by("created_at", "id"))
    return call, events, recordings


def recording_get(*, tenant: Tenant, recording_id: int) -> Recording:
    """One recording of `tenant`, still held (404 for another tenant's or a deleted one)."""
    return get_scoped_or_404(Recording, tenant=tenant, pk=recording_id, deleted_at__isnull=True)


def voice_numbers_list(*, tenant: Tenant) -> list[tuple[str, str]]:
    """The numbers a call may come from: the tenant's voice-capable numbers still held."""
    return list(
        PhoneNumber.objects.for_tenant(tenant)
        .filter(voice=True, released_at__isnull=True)
        .order_by("phone_number")
        .values_list("phone_number", "friendly_name")
    )


def call_flow_versions_list(*, tenant: Tenant) -> list[tuple[int, str]]:
    """The flows a placed call may run: each flow's current version, as (version id, label)."""
    flows = (
        CallFlow.objects.for_tenant(tenant)
        .filter(current_version__isnull=False)
        .select_related("current_version", "phone_number")
        .order_by("name", "id")
    )
    return [(f.current_version_id, f"{f.name} (v{f.current_version.number})") for f in flows]
