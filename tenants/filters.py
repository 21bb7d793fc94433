"""The date range every log page filters on (`created_from`/`created_to`, whole UTC days), once."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import django_filters
from django import forms


class DateRangeForm(forms.Form):
    """A filter form whose end date may not come before its start date."""

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("created_from"), cleaned.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", "The end date is before the start date.")
        return cleaned


def day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class CreatedRangeFilterSet(django_filters.FilterSet):
    """`created_from`..`created_to` as a half-open range on `created_at`: the index's range scan."""

    created_from = django_filters.DateFilter(
        label="From (UTC)", method="filter_from", widget=forms.DateInput(attrs={"type": "date"})
    )
    created_to = django_filters.DateFilter(
        label="To (UTC)", method="filter_to", widget=forms.DateInput(attrs={"type": "date"})
    )

    def filter_from(self, queryset, name, value):
        return queryset.filter(created_at__gte=day_start(value))

    def filter_to(self, queryset, name, value):
        return queryset.filter(created_at__lt=day_start(value + timedelta(days=1)))
