"""Delivery statistics: the tenant dashboard, the support overview and the delivery alerts.

Definitions (the templates and the alert emails use the same words):

* **delivered** = ``delivered`` + ``read`` (``read`` only ever follows ``delivered``).
* **failed** = ``undelivered`` + ``failed`` (a carrier said no, or it never left Twilio).
* **finished** = delivered + failed. ``canceled``, ``blocked`` (never reached Twilio) and
  in-flight messages have no delivery outcome and are left out of both rates.
* **delivery rate** = delivered / finished; **failure rate** = failed / finished.
* The dashboard's ranges count outbound messages *created* in the range. The cross-tenant
  counts (support overview, alerts) count messages whose outcome *arrived* in the window
  (``status_updated_at``, else ``created_at``), so a burst of late "undelivered" callbacks
  shows up at once instead of being filed under the hour the messages were sent.
* **median time to delivered**: from ``accepted_at`` (else the earliest accepted/queued/sending/
  sent event) to the ``delivered`` event's ``occurred_at`` (`messaging.delivery_times`), of
  the range's delivered messages created before the rollup mark, read from the rolled-up hours'
  histograms: within one bucket of the exact median (under 9.1 %, under 1 s below 1 s; the page
  says so), and no message or event is read. Messages of the current hour join at the next
  recount. Only while the range has no rolled-up hour (before the first recount) is it exact,
  over the range's newest ``MEDIAN_SAMPLE`` delivered messages, as before the rollups.
* **opt-out rate** = distinct numbers that opted out in the range / distinct recipients of
  outbound messages created in the range (``pending`` and ``blocked`` ones were never sent).

Every figure comes from a handful of grouped queries (TruncHour/TruncDay in the tenant's
timezone), never one query per bucket or per message; hours before the rollup mark come from
the hourly counts (`messaging.rollups`), summed per bucket by the database, so a 30-day range
reads at most 720 hourly rows per status and a few dozen come back, not millions. (Zones
whose offset is not whole hours see rolled-up hours in the bucket their UTC hour starts in.)
"""

from __future__ import annotations

import statistics
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import NamedTuple

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, Trunc
from django.utils import timezone

from tenants.models import Tenant
from tenants.twilio_errors import explain

from . import statuses
from .delivery_times import (
    DELIVERED_STATUSES,
    RESOLUTION,
    histogram_median,
    histogram_total,
    seconds_to_delivered,
    with_delivery_times,
)
from .models import Message, MessageHourly, OptOutEvent
from .rollups import message_hourly_mark

FAILED_STATUSES = frozenset({statuses.UNDELIVERED, statuses.FAILED})
OUTCOME_STATUSES = DELIVERED_STATUSES | FAILED_STATUSES
NOT_SENT_STATUSES = frozenset({statuses.PENDING, statuses.BLOCKED})

#: How many delivered messages the exact median looks at (the newest), before the first recount.
MEDIAN_SAMPLE = 5000
#: How many error codes the dashboard lists.
TOP_ERRORS = 5
#: Outcome windows only look at messages created this long before the window: carrier receipts
#: arrive within hours, and the bound keeps the query on the created_at index.
OUTCOME_LOOKBACK = timedelta(days=3)


@dataclass(frozen=True)
class StatsRange:
    key: str
    label: str
    unit: str  # "hour" | "day"
    buckets: int
    label_every: int  # x-axis label on every n-th bar


RANGES: dict[str, StatsRange] = {
    "24h": StatsRange("24h", "Last 24 hours", "hour", 24, 3),
    "7d": StatsRange("7d", "Last 7 days", "day", 7, 1),
    "30d": StatsRange("30d", "Last 30 days", "day", 30, 5),
}
DEFAULT_RANGE = "24h"


@dataclass(frozen=True)
class Series:
    """One colour of the stacked bars: a group of outbound statuses."""

    key: str
    label: str
    color: str
    statuses: frozenset[str]


SERIES: tuple[Series, ...] = (
    Series("delivered", statuses.COUNT_LABELS[statuses.DELIVERED], "#198754", DELIVERED_STATUSES),
    Series(
        "in_progress",
        statuses.COUNT_LABELS[statuses.IN_PROGRESS],
        "#0d6efd",
        statuses.IN_PROGRESS_STATUSES | {statuses.PENDING},
    ),
    Series("undelivered", statuses.COUNT_LABELS[statuses.UNDELIVERED], "#fd7e14", frozenset({statuses.UNDELIVERED})),
    Series("failed", statuses.COUNT_LABELS[statuses.FAILED], "#dc3545", frozenset({statuses.FAILED})),
    Series(
        "other",
        f"{statuses.COUNT_LABELS[statuses.BLOCKED]} or {statuses.COUNT_LABELS[statuses.CANCELED].lower()}",
        "#6c757d",
        frozenset({statuses.BLOCKED, statuses.CANCELED}),
    ),
)
_SERIES_OF_STATUS = {status: s.key for s in SERIES for status in s.statuses}


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class Outcomes:
    """Delivered and failed counts over some window; the rates derive from them."""

    delivered: int = 0
    failed: int = 0

    @property
    def finished(self) -> int:
        return self.delivered + self.failed

    @property
    def failure_rate(self) -> float | None:
        return _rate(self.failed, self.finished)

    @property
    def delivery_rate(self) -> float | None:
        return _rate(self.delivered, self.finished)

    @property
    def failure_rate_display(self) -> str:
        return format_rate(self.failure_rate)


@dataclass
class Bucket:
    start: datetime  # aware, in the tenant's timezone
    counts: dict[str, int] = field(default_factory=dict)  # series key -> messages

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    count: int


@dataclass(frozen=True)
class ErrorCount:
    code: int
    count: int
    explanation: str


@dataclass
class DeliveryStats:
    """Everything the tenant dashboard shows for one range."""

    range: StatsRange
    since: datetime
    until: datetime
    buckets: list[Bucket]
    by_status: list[StatusCount]
    outcomes: Outcomes
    outbound_total: int
    inbound_total: int
    top_errors: list[ErrorCount]
    median_delivery_seconds: float | None
    median_sample: int
    median_approximate: bool  # read from the rolled-up histogram (see `messaging.delivery_times`)
    opted_out: int
    recipients: int

    @property
    def delivery_rate(self) -> float | None:
        return self.outcomes.delivery_rate

    @property
    def opt_out_rate(self) -> float | None:
        return _rate(self.opted_out, self.recipients)

    @property
    def series_totals(self) -> dict[str, int]:
        return {s.key: sum(b.counts.get(s.key, 0) for b in self.buckets) for s in SERIES}

    @property
    def median_delivery_display(self) -> str:
        return format_duration(self.median_delivery_seconds)

    @property
    def median_resolution_display(self) -> str:
        """How close the median is when read from the histogram: "within 9%"; empty when exact."""
        return f"within {RESOLUTION * 100:.0f}%" if self.median_approximate else ""

    @property
    def delivery_rate_display(self) -> str:
        return format_rate(self.delivery_rate)

    @property
    def opt_out_rate_display(self) -> str:
        return format_rate(self.opt_out_rate)


def format_rate(rate: float | None) -> str:
    """97.5% — or an em dash when the denominator was zero."""
    if rate is None:
        return "—"
    return f"{rate * 100:.1f}%"


def format_duration(seconds: float | None) -> str:
    """12 s, 4.5 min, 2.1 h — or an em dash when there is nothing to measure."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _bucket_starts(stats_range: StatsRange, now: datetime, tz: zoneinfo.ZoneInfo) -> list[datetime]:
    """The range's bucket starts, oldest first, the last one holding `now`."""
    local = now.astimezone(tz)
    if stats_range.unit == "hour":
        # Step in UTC: wall-clock arithmetic on aware datetimes would skip/repeat hours at DST.
        last = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return [(last - timedelta(hours=n)).astimezone(tz) for n in range(stats_range.buckets - 1, -1, -1)]
    today = local.date()
    days = [today - timedelta(days=n) for n in range(stats_range.buckets - 1, -1, -1)]
    return [datetime.combine(day, time.min, tzinfo=tz) for day in days]


def _delivery_durations(*, tenant: Tenant, since: datetime, now: datetime) -> list[float]:
    """Times to delivered of the newest MEDIAN_SAMPLE delivered outbound messages created in
    [since, now], for a range without rolled-up hours (the LIMIT sits in the subquery, so the
    event join never sees more than MEDIAN_SAMPLE)."""
    sample = (
        Message.objects.for_tenant(tenant)
        .filter(
            created_at__gte=since,
            created_at__lte=now,
            direction=Message.Direction.OUTBOUND,
            status__in=DELIVERED_STATUSES,
        )
        .order_by("-created_at", "-id")
        .values("id")[:MEDIAN_SAMPLE]
    )
    timings = (
        with_delivery_times(Message.objects.for_tenant(tenant).filter(id__in=sample))
        .filter(delivered_at__isnull=False)
        .order_by()
        .values_list("accepted_at", "first_sent_at", "delivered_at")
    )
    return [s for s in (seconds_to_delivered(*row) for row in timings) if s is not None]


class _Count(NamedTuple):
    """Messages of one bucket, direction, status and error code (a tuple: thousands per page)."""

    bucket: datetime  # UTC
    direction: str
    status: str
    error_code: int | None
    n: int


@dataclass
class _Tally:
    """What `_counts` found: the counts, the recipients, the rolled-up hours' time-to-delivered
    histogram, and where the rolled-up hours end and the messages take over."""

    counts: list[_Count]
    recipients: int
    histogram: dict[str, int]
    split: datetime


def _counts(*, tenant: Tenant, since: datetime, now: datetime, stats_range: StatsRange, tz) -> _Tally:
    """Counts per bucket, direction, status and error code over [since, now], and the
    recipients of outbound messages that were sent: hours before the rollup mark from
    `MessageHourly`, the rest from the messages created since (see `messaging.rollups`).

    Rolled-up recipients are distinct per hour and status: a number messaged in several
    hours counts in each (the live part counts it once)."""
    mark = message_hourly_mark()
    split = min(mark, now) if mark is not None and mark > since else since
    tally = _Tally(counts=[], recipients=0, histogram={}, split=split)
    counts = tally.counts
    if split > since:
        hours = MessageHourly.objects.for_tenant(tenant).filter(
            hour__gte=since.astimezone(UTC).replace(minute=0, second=0, microsecond=0), hour__lt=split
        )
        # Summed per bucket by the database: a 30-day range is ~30 rows per status, not 720.
        rolled = (
            hours.annotate(bucket=Trunc("hour", stats_range.unit, tzinfo=tz))
            .values_list("bucket", "direction", "status", "error_code")
            .annotate(n=Sum("messages"), people=Sum("recipients"))
            .order_by()
        )
        for bucket, direction, status, error_code, n, people in rolled:
            counts.append(_Count(bucket.astimezone(UTC), direction, status, error_code, n))
            if direction == Message.Direction.OUTBOUND and status not in NOT_SENT_STATUSES:
                tally.recipients += people
        tally.histogram = histogram_total(hours)
    live = Message.objects.for_tenant(tenant).filter(created_at__gte=split, created_at__lte=now)
    rows = (
        live.annotate(bucket=Trunc("created_at", stats_range.unit, tzinfo=tz))
        .values_list("bucket", "direction", "status", "error_code")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts += [
        _Count(bucket.astimezone(UTC), direction, status, code, n) for bucket, direction, status, code, n in rows
    ]
    tally.recipients += (
        live.filter(direction=Message.Direction.OUTBOUND)
        .exclude(status__in=NOT_SENT_STATUSES)
        .aggregate(n=Count("to_number", distinct=True))["n"]
    )
    return tally


def delivery_stats(*, tenant: Tenant, range_key: str = DEFAULT_RANGE, now: datetime | None = None) -> DeliveryStats:
    """The dashboard's numbers for one tenant and range (see the module docstring)."""
    stats_range = RANGES.get(range_key) or RANGES[DEFAULT_RANGE]
    now = now or timezone.now()
    tz = zoneinfo.ZoneInfo(tenant.timezone)
    starts = _bucket_starts(stats_range, now, tz)
    since = starts[0]

    # 1. Both directions per bucket, status and error code: the chart, the status table, the
    #    rates, inbound, the top error codes.
    tally = _counts(tenant=tenant, since=since, now=now, stats_range=stats_range, tz=tz)
    buckets = {start.astimezone(UTC): Bucket(start=start) for start in starts}
    by_status: dict[str, int] = {}
    errors: dict[int, int] = {}
    inbound_total = 0
    for row in tally.counts:
        if row.direction == Message.Direction.INBOUND:
            inbound_total += row.n
            continue
        by_status[row.status] = by_status.get(row.status, 0) + row.n
        if row.error_code is not None:
            errors[row.error_code] = errors.get(row.error_code, 0) + row.n
        bucket = buckets.get(row.bucket)
        series = _SERIES_OF_STATUS.get(row.status, "other")
        if bucket is not None:
            bucket.counts[series] = bucket.counts.get(series, 0) + row.n

    outcomes = Outcomes(
        delivered=sum(by_status.get(s, 0) for s in DELIVERED_STATUSES),
        failed=sum(by_status.get(s, 0) for s in FAILED_STATUSES),
    )
    top_errors = [
        ErrorCount(code=code, count=n, explanation=explain(code))
        for code, n in sorted(errors.items(), key=lambda item: (-item[1], item[0]))[:TOP_ERRORS]
    ]

    # 2. Median time to delivered: from the rolled-up hours' histogram, reading no message or
    #    event; only while the range has no rolled-up hour (no recount yet), from the messages.
    if tally.split > since:
        median, timed = histogram_median(tally.histogram)
    else:
        durations = _delivery_durations(tenant=tenant, since=since, now=now)
        median, timed = (statistics.median(durations) if durations else None), len(durations)

    # 3. Opt-out rate: distinct numbers opting out / recipients messaged.
    opted_out = (
        OptOutEvent.objects.for_tenant(tenant)
        .filter(action=OptOutEvent.Action.OPT_OUT, created_at__gte=since, created_at__lte=now)
        .aggregate(n=Count("phone", distinct=True))["n"]
    )

    order = [value for value, _ in statuses.OUTBOUND_STATUS_CHOICES]
    return DeliveryStats(
        range=stats_range,
        since=since,
        until=now,
        buckets=list(buckets.values()),
        by_status=[
            StatusCount(status=s, label=statuses.status_label(s), count=by_status[s])
            for s in sorted(by_status, key=lambda s: order.index(s) if s in order else len(order))
        ],
        outcomes=outcomes,
        outbound_total=sum(by_status.values()),
        inbound_total=inbound_total,
        top_errors=top_errors,
        median_delivery_seconds=median,
        median_sample=timed,
        median_approximate=bool(tally.histogram),
        opted_out=opted_out,
        recipients=tally.recipients,
    )


def outcomes_by_tenant(*, since: datetime, until: datetime | None = None) -> dict[int, Outcomes]:
    """Cross-tenant: delivered/failed outbound messages whose outcome arrived in [since, until).

    For platform monitoring only (support overview, alert checks): one grouped query.
    """
    outcome_at = Coalesce("status_updated_at", "created_at")
    qs = (
        Message.all_tenants.filter(
            direction=Message.Direction.OUTBOUND,
            status__in=OUTCOME_STATUSES,
            created_at__gte=since - OUTCOME_LOOKBACK,
        )
        .annotate(outcome_at=outcome_at)
        .filter(outcome_at__gte=since)
    )
    if until is not None:
        qs = qs.filter(outcome_at__lt=until)
    rows = (
        qs.values("tenant_id")
        .annotate(
            delivered=Count("id", filter=Q(status__in=DELIVERED_STATUSES)),
            failed=Count("id", filter=Q(status__in=FAILED_STATUSES)),
        )
        .order_by()
    )
    return {row["tenant_id"]: Outcomes(delivered=row["delivered"], failed=row["failed"]) for row in rows}


# --------------------------------------------------------------------------- the SVG chart


@dataclass(frozen=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass
class Chart:
    """Geometry of the stacked bar chart; templates/tenants/_status_chart.html draws it."""

    width: int
    height: int
    plot_left: int
    plot_top: int
    plot_bottom: int
    plot_right: int
    title: str
    description: str
    segments: list[Segment]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    legend: list[tuple[Series, int]]


def _nice_max(value: int) -> int:
    """A round axis maximum ≥ value (1, 2, 5, 10, 20, 50, …)."""
    if value <= 0:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def status_chart(stats: DeliveryStats, *, width: int = 760, height: int = 240) -> Chart:
    """Lay out the stacked bars (one per hour or day) for a server-rendered SVG."""
    left, right, top, bottom = 44, width - 8, 10, height - 28
    plot_w, plot_h = right - left, bottom - top
    peak = _nice_max(max((b.total for b in stats.buckets), default=0))
    slot = plot_w / max(len(stats.buckets), 1)
    bar_w = max(slot * 0.72, 1.0)
    hourly = stats.range.unit == "hour"

    segments: list[Segment] = []
    x_ticks: list[Tick] = []
    for i, bucket in enumerate(stats.buckets):
        x = left + i * slot + (slot - bar_w) / 2
        d = bucket.start
        when = f"{d:%b} {d.day} {d:%H}:00" if hourly else f"{d:%a %b} {d.day}"
        y = float(bottom)
        for series in SERIES:
            n = bucket.counts.get(series.key, 0)
            if not n:
                continue
            h = n / peak * plot_h
            y -= h
            segments.append(
                Segment(
                    round(x, 2),
                    round(y, 2),
                    round(bar_w, 2),
                    round(h, 2),
                    series.color,
                    f"{when}: {n} {series.label.lower()}",
                )
            )
        if i % stats.range.label_every == 0:
            label = f"{d:%H}:00" if hourly else f"{d:%b} {d.day}"
            x_ticks.append(Tick(round(x + bar_w / 2, 2), label))
    y_ticks = [Tick(round(bottom - plot_h * f, 2), str(round(peak * f))) for f in (0, 0.5, 1)]
    if peak == 1:
        y_ticks = [y_ticks[0], y_ticks[2]]
    totals = stats.series_totals
    described = ", ".join(f"{totals[s.key]} {s.label.lower()}" for s in SERIES)
    unit = "hour" if hourly else "day"
    return Chart(
        width=width,
        height=height,
        plot_left=left,
        plot_top=top,
        plot_bottom=bottom,
        plot_right=right,
        title=f"Outbound messages by status per {unit}, {stats.range.label.lower()}",
        description=f"{stats.outbound_total} outbound messages: {described}.",
        segments=segments,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        legend=[(s, totals[s.key]) for s in SERIES],
    )
