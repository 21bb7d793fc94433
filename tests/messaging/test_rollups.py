"""The dashboard from hourly counts: the same figures as counting the messages, a late status
change picked up by the next recount, and a bounded number of queries whatever the range; the
median time to delivered from hourly histograms, within a bucket of the exact median."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging.delivery_times import RESOLUTION, bucket_bounds, bucket_of, histogram_median
from messaging.models import Message, MessageHourly
from messaging.monitoring import delivery_stats
from messaging.rollups import RECOUNT_HOURS, message_hourly_mark, message_hourly_recount
from tests.conftest import random_sid
from tests.messaging.factories import MessageEventFactory, MessageFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 15, 40, tzinfo=UTC)
STATUSES = ["delivered", "delivered", "undelivered", "failed", "sent", "read", "blocked", "received"]


def traffic(tenant, *, hours: int = 200) -> list[Message]:
    made = []
    for h in range(hours):
        for i, status in enumerate(STATUSES[: 1 + h % len(STATUSES)]):
            made.append(
                Message.objects.create(
                    tenant=tenant,
                    direction="inbound" if status == "received" else "outbound",
                    sid=random_sid("SM"),
                    status=status,
                    error_code={"undelivered": 30003, "failed": 30008}.get(status),
                    from_number="+14155550199",
                    to_number=f"+1415555{h:02d}{i:02d}"[-12:],
                )
            )
            Message.all_tenants.filter(pk=made[-1].pk).update(created_at=NOW - timedelta(hours=h, minutes=7 * i))
    return made


def figures(stats) -> dict:
    return {
        "buckets": [(b.start, dict(b.counts)) for b in stats.buckets],
        "by_status": [(c.status, c.count) for c in stats.by_status],
        "outcomes": stats.outcomes,
        "inbound": stats.inbound_total,
        "errors": [(e.code, e.count) for e in stats.top_errors],
        "recipients": stats.recipients,
    }


@pytest.mark.parametrize("range_key", ["24h", "7d", "30d"])
@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_rolled_up_figures_equal_counting_the_messages(tenant, range_key, zone):
    tenant.timezone = zone
    tenant.save()
    traffic(tenant)
    counted = figures(delivery_stats(tenant=tenant, range_key=range_key, now=NOW))
    assert message_hourly_recount(now=NOW) > 0
    assert message_hourly_mark() == NOW.replace(minute=0)
    assert figures(delivery_stats(tenant=tenant, range_key=range_key, now=NOW)) == counted


def test_a_status_that_moves_later_is_recounted(tenant):
    made = traffic(tenant, hours=10)
    message_hourly_recount(now=NOW)
    sent = next(m for m in made if m.status == "sent")
    Message.all_tenants.filter(pk=sent.pk).update(status="delivered")
    before = delivery_stats(tenant=tenant, range_key="24h", now=NOW + timedelta(minutes=30))
    message_hourly_recount(now=NOW + timedelta(hours=1))
    after = delivery_stats(tenant=tenant, range_key="24h", now=NOW + timedelta(minutes=30))
    assert after.outcomes.delivered == before.outcomes.delivered + 1


def test_recount_keeps_older_hours_and_never_doubles(tenant, other_tenant):
    traffic(tenant, hours=RECOUNT_HOURS + 20)
    traffic(other_tenant, hours=5)
    message_hourly_recount(now=NOW)
    total = sum(MessageHourly.all_tenants.values_list("messages", flat=True))
    message_hourly_recount(now=NOW)
    message_hourly_recount(now=NOW + timedelta(minutes=10))
    assert sum(MessageHourly.all_tenants.values_list("messages", flat=True)) == total
    assert total == Message.all_tenants.filter(created_at__lt=NOW.replace(minute=0)).count()
    assert not MessageHourly.objects.for_tenant(other_tenant).filter(hour__lt=NOW - timedelta(hours=5)).exists()


def test_dashboard_queries_do_not_grow_with_the_range(tenant):
    traffic(tenant, hours=60)
    timed_deliveries(tenant, [10, 20, 30])
    message_hourly_recount(now=NOW)
    sizes = set()
    for range_key in ("24h", "7d", "30d"):
        with CaptureQueriesContext(connection) as queries:
            stats = delivery_stats(tenant=tenant, range_key=range_key, now=NOW)
        assert stats.median_sample == 3
        sizes.add(len(queries))
        # The median comes from the hourly histograms: no event is read, whatever the range.
        assert not [q["sql"] for q in queries if "messageevent" in q["sql"].lower()]
    assert sizes == {6}, sizes  # mark, hourly counts, hourly histograms, live counts, live recipients, opt-outs


# --------------------------------------------------------------------------- time to delivered


def timed_deliveries(tenant, seconds: list[float], *, start: datetime = NOW - timedelta(hours=3)) -> list[Message]:
    """Delivered messages (every third one read since; every fourth one without accepted_at, so
    its 'sent' event is the start), one every 7 minutes backwards from `start`, each taking the
    given seconds from sent to delivered."""
    made = []
    for i, took in enumerate(seconds):
        at = start - timedelta(minutes=7 * i)
        message = MessageFactory(
            tenant=tenant, status="read" if i % 3 == 2 else "delivered", at=at, accepted_at=None if i % 4 == 3 else at
        )
        MessageEventFactory(message=message, status="sent", occurred_at=at)
        MessageEventFactory(message=message, status="delivered", occurred_at=at + timedelta(seconds=took))
        made.append(message)
    return made


# Spread over three decades, clustered like carrier receipts, with a long tail.
KNOWN_SECONDS = [0.4, 0.9, 1.7, 2.5, 3.1, 3.3, 4.8, 5.2, 6.0, 6.1, 7.7, 8.4, 9.9, 11.5, 12.0, 14.2, 17.0, 19.5]
KNOWN_SECONDS += [23.0, 26.4, 31.0, 38.0, 45.5, 61.0, 95.0, 180.0, 420.0, 1300.0, 2.2, 3.9, 4.4, 5.5, 7.1]


@pytest.mark.parametrize("shift", [0, 5, 11, 17])
def test_median_from_the_histogram_is_the_exact_median_within_a_bucket(tenant, other_tenant, shift):
    seconds = KNOWN_SECONDS[shift:] + [s * 1.37 for s in KNOWN_SECONDS[:shift]]
    timed_deliveries(tenant, seconds)
    timed_deliveries(other_tenant, [3600.0] * 50)  # another tenant's slow day never counts
    # Not measurable, so in neither median: no delivered event; delivered "before" it was sent
    # (clock skew); and a failure's events.
    MessageFactory(tenant=tenant, status="delivered", at=NOW - timedelta(hours=5), accepted_at=NOW)
    skewed = MessageFactory(tenant=tenant, status="delivered", at=NOW - timedelta(hours=5), accepted_at=NOW)
    MessageEventFactory(message=skewed, status="delivered", occurred_at=NOW - timedelta(hours=5))
    failed = MessageFactory(tenant=tenant, status="undelivered", at=NOW - timedelta(hours=4), accepted_at=NOW)
    MessageEventFactory(message=failed, status="delivered", occurred_at=NOW)
    exact = statistics.median(seconds)

    before = delivery_stats(tenant=tenant, range_key="7d", now=NOW)  # no rollups yet: exact
    assert (before.median_delivery_seconds, before.median_sample, before.median_approximate) == (
        pytest.approx(exact),
        len(seconds),
        False,
    )
    message_hourly_recount(now=NOW)
    after = delivery_stats(tenant=tenant, range_key="7d", now=NOW)
    assert after.median_approximate and after.median_sample == len(seconds)
    assert after.median_delivery_seconds == pytest.approx(exact, rel=RESOLUTION)
    assert after.outcomes == before.outcomes


def test_median_of_a_range_is_not_an_average_of_hourly_medians(tenant):
    timed_deliveries(tenant, [10.0] * 40, start=NOW - timedelta(hours=2))  # all within hours 10:00-13:59
    timed_deliveries(tenant, [1000.0], start=NOW - timedelta(hours=30))
    message_hourly_recount(now=NOW)
    stats = delivery_stats(tenant=tenant, range_key="7d", now=NOW)
    assert stats.median_sample == 41
    assert stats.median_delivery_seconds == pytest.approx(10, rel=RESOLUTION)
    # The 24 h range leaves the slow one out; a message of the current hour waits for the recount.
    timed_deliveries(tenant, [500.0], start=NOW - timedelta(minutes=5))
    assert delivery_stats(tenant=tenant, range_key="24h", now=NOW).median_sample == 40


def test_a_range_without_deliveries_shows_what_it_showed_before_the_rollups(client, tenant, viewer):
    for status in ("undelivered", "failed", "sent"):
        message = MessageFactory(tenant=tenant, status=status, at=timezone.now() - timedelta(hours=3))
        MessageEventFactory(message=message, status="sent", occurred_at=message.created_at)
    client.force_login(viewer)

    def median_card() -> tuple:
        response = client.get(f"/t/{tenant.slug}/?range=7d")
        stats, html = response.context["stats"], response.content.decode()
        card = html.split('data-stat="median-delivery">')[1].split("</div></div></div>")[0]
        return stats.median_delivery_seconds, stats.median_sample, stats.median_approximate, card

    before = median_card()
    message_hourly_recount()
    assert message_hourly_mark() is not None
    assert median_card() == before == (None, 0, False, before[3])
    assert before[3].startswith("—<") and "median-resolution" not in before[3]


def test_the_page_says_the_median_is_read_from_histograms(client, tenant, viewer):
    timed_deliveries(tenant, [30.0, 40.0], start=timezone.now() - timedelta(hours=3))
    message_hourly_recount()
    client.force_login(viewer)
    html = client.get(f"/t/{tenant.slug}/").content.decode()
    assert 'data-stat="median-resolution">within 9%<' in html
    assert "over 2 delivered messages" in html


@pytest.mark.parametrize("seconds", [0, 0.5, 0.99, 1, 1.04, 1.5, 2, 35, 59.9, 3600, 86400 * 3])
def test_every_time_falls_in_its_bucket(seconds):
    low, high = bucket_bounds(bucket_of(seconds))
    assert low <= seconds < high
    assert high - low <= max(1, low * RESOLUTION) + 1e-9
    assert histogram_median({str(bucket_of(seconds)): 1})[0] == pytest.approx((low + high) / 2)


def test_dashboard_page_query_budget_with_rollups(client, tenant, viewer):
    """The whole page once the hours are rolled up: as many queries as counting the messages
    (tests/tenants/test_monitoring.py), and none of them reads an event."""
    traffic(tenant, hours=60)
    timed_deliveries(tenant, [10, 20, 30], start=timezone.now() - timedelta(hours=3))
    message_hourly_recount()
    client.force_login(viewer)
    client.get(f"/t/{tenant.slug}/")  # warm the session and content types
    for range_key in ("24h", "30d"):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/t/{tenant.slug}/?range={range_key}")
        assert response.context["stats"].median_sample == 3
        assert len(queries) <= 16, [q["sql"][:80] for q in queries]
        assert not [q["sql"] for q in queries if "messageevent" in q["sql"].lower()]
