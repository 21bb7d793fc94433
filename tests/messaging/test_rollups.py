"""The dashboard from hourly counts: the same figures as counting the messages, a late status
change picked up by the next recount, and a bounded number of queries whatever the range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.models import Message, MessageHourly
from messaging.monitoring import delivery_stats
from messaging.rollups import RECOUNT_HOURS, message_hourly_mark, message_hourly_recount
from tests.conftest import random_sid

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
    message_hourly_recount(now=NOW)
    sizes = set()
    for range_key in ("24h", "7d", "30d"):
        with CaptureQueriesContext(connection) as queries:
            delivery_stats(tenant=tenant, range_key=range_key, now=NOW)
        sizes.add(len(queries))
    assert sizes == {6}, sizes  # mark, hourly counts, live counts, live recipients, median, opt-outs
