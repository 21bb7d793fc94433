"""The message log's filters (django-filter), rendered with crispy forms; its CSV export takes
the same query parameters."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from tenants.filters import CreatedRangeFilterSet, DateRangeForm
from tenants.models import messaging_service_sid_validator
from tenants.phones import form_phone_region_set, tenant_phone_region

from . import statuses
from .forms.fields import PhoneField
from .log import bulk_send_choices, message_list
from .models import BulkSend, Message


class PhoneFilter(django_filters.CharFilter):
    field_class = PhoneField


class MessageFilter(CreatedRangeFilterSet):
    """Every filter narrows on an indexed column or a range of one; nothing is counted."""

    direction = django_filters.ChoiceFilter(choices=Message.Direction.choices, empty_label="Any direction")
    status = django_filters.ChoiceFilter(choices=statuses.STATUS_CHOICES, empty_label="Any status")
    error_code = django_filters.NumberFilter(
        label="Error code", widget=forms.NumberInput(attrs={"placeholder": "21610"})
    )
    phone = PhoneFilter(label="Number (from or to)", method="filter_phone", help_text="")
    messaging_service_sid = django_filters.CharFilter(
        label="Messaging Service SID", validators=[messaging_service_sid_validator]
    )
    # The choices are the tenant's own bulk sends (`bulk_send_choices`, given to __init__):
    # another tenant's id is an invalid choice, never a filter on its rows.
    bulk = django_filters.ModelChoiceFilter(
        label="Bulk send", field_name="bulk_send", queryset=BulkSend.objects.none(), empty_label="Any bulk send"
    )

    class Meta:
        model = Message
        fields: list[str] = []
        form = DateRangeForm

    def __init__(self, data=None, *args, bulk_sends: QuerySet[BulkSend], **kwargs):
        super().__init__(data, *args, **kwargs)
        self.filters["bulk"].queryset = bulk_sends

    def filter_phone(self, queryset, name, value):
        # Both columns are indexed with the tenant: (tenant, from_number, …), (tenant, to_number, …).
        return queryset.filter(Q(from_number=value) | Q(to_number=value))


def message_filtered(*, tenant, params) -> tuple[MessageFilter, QuerySet[Message]]:
    """The filter form bound to `params` and the tenant's messages it selects (none while the
    filters are invalid), for the list page and its export alike."""
    filters = MessageFilter(
        params or None, queryset=message_list(tenant=tenant), bulk_sends=bulk_send_choices(tenant=tenant)
    )
    form_phone_region_set(filters.form, region=tenant_phone_region(tenant))
    if filters.is_bound and not filters.is_valid():
        return filters, filters.queryset.none()
    return filters, filters.qs
