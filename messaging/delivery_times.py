"""Time to delivered: what it measures, and the histogram the hourly rollups keep of it.

A delivered message's **time to delivered** runs from ``accepted_at`` (else its earliest
accepted/queued/sending/sent event) to its ``delivered`` event's ``occurred_at``. Messages
without a delivered event or a start, and those whose clock runs backwards (skew), have none.

The rollups (`messaging.rollups`) keep, per hour and status, how many delivered messages took
how long, counted in fixed log-spaced buckets (`BUCKETS_PER_OCTAVE` per doubling: bucket 0 is
[0, 1 s), bucket *i* ≥ 1 is [2^((i-1)/8), 2^(i/8)) s). A median over any range is then read
from the summed histogram (`histogram_median`) without touching a message or an event. The
bucket holding each middle value is known exactly; inside it the value is interpolated
linearly, so the estimate is off by less than one bucket: under 1 s below 1 s, else under
9.1 % (2^(1/8) − 1) of the true median.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from django.db import connection
from django.db.models import Min, Q, QuerySet

from . import statuses

__all__ = [
    "BUCKETS_PER_OCTAVE",
    "DELIVERED_STATUSES",
    "RESOLUTION",
    "SEND_EVENT_STATUSES",
    "bucket_bounds",
    "bucket_of",
    "histogram_add",
    "histogram_median",
    "histogram_total",
    "seconds_to_delivered",
    "with_delivery_times",
]

DELIVERED_STATUSES = frozenset({statuses.DELIVERED, statuses.READ})
SEND_EVENT_STATUSES = (statuses.ACCEPTED, statuses.QUEUED, statuses.SENDING, statuses.SENT)

BUCKETS_PER_OCTAVE = 8
#: Relative width of a bucket (above 1 s): the worst error of a median read from a histogram.
RESOLUTION = 2 ** (1 / BUCKETS_PER_OCTAVE) - 1


def with_delivery_times(messages: QuerySet) -> QuerySet:
    """`messages` (Message rows) with `delivered_at` and `first_sent_at` from their events."""
    return messages.annotate(
        delivered_at=Min("events__occurred_at", filter=Q(events__status=statuses.DELIVERED)),
        first_sent_at=Min("events__occurred_at", filter=Q(events__status__in=SEND_EVENT_STATUSES)),
    )


def seconds_to_delivered(
    accepted_at: datetime | None, first_sent_at: datetime | None, delivered_at: datetime | None
) -> float | None:
    """The time to delivered, or None when there is none to measure (see the module docstring)."""
    sent_at = accepted_at or first_sent_at
    if sent_at is None or delivered_at is None or delivered_at < sent_at:  # skew: skip, never negative
        return None
    return (delivered_at - sent_at).total_seconds()


def bucket_of(seconds: float) -> int:
    """The histogram bucket holding `seconds`."""
    if seconds < 1:
        return 0
    return 1 + math.floor(math.log2(seconds) * BUCKETS_PER_OCTAVE)


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """[low, high) seconds of a bucket."""
    if bucket <= 0:
        return 0.0, 1.0
    return 2 ** ((bucket - 1) / BUCKETS_PER_OCTAVE), 2 ** (bucket / BUCKETS_PER_OCTAVE)


def histogram_add(total: dict[str, int], histogram: Mapping[str, int] | None) -> None:
    """Add a stored histogram ({bucket as text: count}, as JSON keeps it) into `total`."""
    if not histogram:
        return
    if not total:
        total.update(histogram)
        return
    for bucket, n in histogram.items():
        total[bucket] = total.get(bucket, 0) + n


def histogram_total(rows: QuerySet) -> dict[str, int]:
    """The sum of the histograms of some `MessageHourly` rows.

    PostgreSQL adds them up itself (jsonb_each_text over the rows: a 30-day range sends back a
    few dozen buckets, not 720 decoded documents); other databases (SQLite) in Python."""
    stored = rows.filter(delivery_histogram__isnull=False).values("delivery_histogram").order_by()
    if connection.vendor != "postgresql":
        total: dict[str, int] = {}
        for histogram in stored.values_list("delivery_histogram", flat=True):
            histogram_add(total, histogram)
        return total
    sql, params = stored.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bucket.key, SUM(bucket.value::bigint) "
            f"FROM ({sql}) AS hourly, jsonb_each_text(hourly.delivery_histogram) AS bucket GROUP BY bucket.key",
            params,
        )
        return {key: int(n) for key, n in cursor.fetchall()}


def _nth(ordered: list[tuple[int, int]], rank: int) -> float:
    """The rank-th smallest value (1-based), interpolated inside its bucket (midpoint ranks)."""
    before = 0
    for bucket, n in ordered:
        if before + n >= rank:
            low, high = bucket_bounds(bucket)
            return low + (rank - before - 0.5) / n * (high - low)
        before += n
    raise ValueError(rank)


def histogram_median(histogram: Mapping[str, int]) -> tuple[float | None, int]:
    """(median seconds, deliveries counted) of a summed histogram; (None, 0) when it is empty.

    The middle rank of the whole histogram is looked up (never an average of hourly medians)
    and interpolated inside its bucket: within one bucket of the exact median."""
    ordered = sorted((int(bucket), n) for bucket, n in histogram.items() if n)
    total = sum(n for _, n in ordered)
    if not total:
        return None, 0
    if total % 2:
        return _nth(ordered, (total + 1) // 2), total
    return (_nth(ordered, total // 2) + _nth(ordered, total // 2 + 1)) / 2, total
