"""Hourly message counts per tenant (`MessageHourly`), so the dashboard never scans millions
of messages: a periodic task recounts the last `RECOUNT_HOURS` complete UTC hours of every
tenant from the messages themselves (statuses still move for a while after a message is
created) and moves the mark; the dashboard reads the counts for the hours before the mark and
only the messages created since then.

Each delivered row also keeps a histogram of its messages' times to delivered
(`messaging.delivery_times`), so the dashboard's median needs no event either.

Recounting rather than incrementing on every status callback keeps the callback one
statement (no hot counter row every concurrent callback would wait on), and a count can never
drift: it is rebuilt from the rows. A status that changes after its hour left the recount
window is not reflected (carrier receipts arrive within hours; `monitoring.OUTCOME_LOOKBACK`
makes the same bet).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Min
from django.db.models.functions import TruncHour
from django.utils import timezone

from .delivery_times import DELIVERED_STATUSES, bucket_of, seconds_to_delivered, with_delivery_times
from .models import Message, MessageHourly, MessageHourlyMark

__all__ = ["RECOUNT_HOURS", "message_hourly_mark", "message_hourly_recount"]

#: Complete hours recounted on every run (a message's status settles well within this).
RECOUNT_HOURS = 72


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def message_hourly_mark() -> datetime | None:
    """Hours before this are in `MessageHourly`; None before the first recount."""
    return MessageHourlyMark.objects.values_list("through", flat=True).first()


def _key(row: dict) -> tuple:
    return (row["tenant_id"], row["hour"], row["direction"], row["status"], row["error_code"])


def _delivery_histograms(*, since: datetime, until: datetime) -> dict[tuple, dict[str, int]]:
    """Per rollup row (tenant, hour, direction, status, error code) of delivered messages
    created in [since, until): their times to delivered, bucketed (`messaging.delivery_times`).

    Read row by row (the time needs each message's events), in chunks: a few hours' deliveries
    every run, all of them only the first time."""
    timings = (
        with_delivery_times(
            Message.all_tenants.filter(
                created_at__gte=since,
                created_at__lt=until,
                direction=Message.Direction.OUTBOUND,
                status__in=DELIVERED_STATUSES,
            )
        )
        .filter(delivered_at__isnull=False)
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values_list(
            "tenant_id", "hour", "direction", "status", "error_code", "accepted_at", "first_sent_at", "delivered_at"
        )
        .order_by()
    )
    histograms: dict[tuple, dict[str, int]] = {}
    for *key, accepted_at, first_sent_at, delivered_at in timings.iterator(chunk_size=5000):
        seconds = seconds_to_delivered(accepted_at, first_sent_at, delivered_at)
        if seconds is not None:
            histogram = histograms.setdefault(tuple(key), {})
            bucket = str(bucket_of(seconds))
            histogram[bucket] = histogram.get(bucket, 0) + 1
    return histograms


def message_hourly_recount(*, now: datetime | None = None) -> int:
    """Recount every tenant's complete hours since the mark minus `RECOUNT_HOURS` (all of
    them the first time) and move the mark to the current hour; returns the rows written.

    A cross-tenant job (`Message.all_tenants`), one grouped query; runs serialised on the
    mark's row lock, so two runs never both insert an hour.
    """
    until = _hour_floor(now or timezone.now())
    with transaction.atomic():
        mark, _ = MessageHourlyMark.objects.select_for_update().get_or_create(pk=1)
        if mark.through is not None:
            since = min(mark.through, until) - timedelta(hours=RECOUNT_HOURS)
        else:
            first = Message.all_tenants.aggregate(first=Min("created_at"))["first"]
            since = _hour_floor(first) if first else until
        MessageHourly.all_tenants.filter(hour__gte=since).delete()
        rows = (
            Message.all_tenants.filter(created_at__gte=since, created_at__lt=until)
            .annotate(hour=TruncHour("created_at", tzinfo=UTC))
            .values("tenant_id", "hour", "direction", "status", "error_code")
            .annotate(messages=Count("id"), recipients=Count("to_number", distinct=True))
            .order_by()
        )
        histograms = _delivery_histograms(since=since, until=until)
        written = MessageHourly.all_tenants.bulk_create(
            (MessageHourly(**row, delivery_histogram=histograms.get(_key(row)) or None) for row in rows),
            batch_size=2000,
        )
        mark.through = until
        mark.save(update_fields=["through"])
    return len(written)
