"""Hourly message counts per tenant (`MessageHourly`), so the dashboard never scans millions
of messages: a periodic task recounts the last `RECOUNT_HOURS` complete UTC hours of every
tenant from the messages themselves (statuses still move for a while after a message is
created) and moves the mark; the dashboard reads the counts for the hours before the mark and
only the messages created since then.

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

from .models import Message, MessageHourly, MessageHourlyMark

__all__ = ["RECOUNT_HOURS", "message_hourly_mark", "message_hourly_recount"]

#: Complete hours recounted on every run (a message's status settles well within this).
RECOUNT_HOURS = 72


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def message_hourly_mark() -> datetime | None:
    """Hours before this are in `MessageHourly`; None before the first recount."""
    return MessageHourlyMark.objects.values_list("through", flat=True).first()


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
        written = MessageHourly.all_tenants.bulk_create((MessageHourly(**row) for row in rows), batch_size=2000)
        mark.through = until
        mark.save(update_fields=["through"])
    return len(written)
