"""The tenant dashboard's delivery statistics (messaging/monitoring.py) and the support overview.

Every number on the dashboard is checked against rows created here; another tenant's much
worse traffic is created alongside and must never be counted.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import factory
import pytest
from django.utils import timezone
from django.utils.html import escape

from messaging.monitoring import RANGES, _bucket_starts, delivery_stats, format_duration, outcomes_by_tenant
from tenants.twilio_errors import explain
from tests.messaging.factories import MessageEventFactory, MessageFactory, OptOutEventFactory
from tests.tenants.factories import TenantFactory, UserFactory


class TrafficFactory(MessageFactory):
    """Dashboard traffic: each message to its own customer number, with no SID or body."""

    class Params:
        customer = factory.LazyAttributeSequence(
            lambda o, n: f"+141555{6 if o.direction == 'inbound' else 5}{n % 10_000:04d}"
        )
        ours = "+15005550006"

    sid = None
    body = ""


@pytest.fixture
def traffic(tenant, other_tenant):
    """Acme's last 24 hours (and a little older), plus Globex's terrible day."""
    now = timezone.now()
    t = now - timedelta(hours=2)
    # Six delivered (one of them read since): time to delivered 10, 20, 30, 40, 50 and 60 s.
    for seconds in (10, 20, 30, 40, 50):
        m = TrafficFactory(tenant=tenant, status="delivered", at=t, accepted_at=t)
        MessageEventFactory(message=m, status="sent", occurred_at=t + timedelta(seconds=1))
        MessageEventFactory(message=m, status="delivered", occurred_at=t + timedelta(seconds=seconds))
    read = TrafficFactory(tenant=tenant, status="read", at=t)  # no accepted_at: the 'sent' event is the start
    MessageEventFactory(message=read, status="sent", occurred_at=t)
    MessageEventFactory(message=read, status="delivered", occurred_at=t + timedelta(seconds=60))
    MessageEventFactory(message=read, status="read", occurred_at=t + timedelta(seconds=600))
    # Four failed or undelivered.
    TrafficFactory(tenant=tenant, status="undelivered", at=t, error_code=30003)
    TrafficFactory(tenant=tenant, status="undelivered", at=now - timedelta(hours=20), error_code=30003)
    TrafficFactory(tenant=tenant, status="undelivered", at=t, error_code=30006)
    TrafficFactory(tenant=tenant, status="failed", at=t, error_code=30007)
    # In flight and blocked: counted by status, no outcome; blocked never reached anyone.
    TrafficFactory(tenant=tenant, status="sent", at=now - timedelta(minutes=5))
    TrafficFactory(tenant=tenant, status="blocked", at=t)
    # Inbound.
    for _ in range(3):
        TrafficFactory(tenant=tenant, status="received", at=t, direction="inbound")
    # Opt-outs: two distinct numbers (one texted STOP twice), and an old one.
    OptOutEventFactory(tenant=tenant, phone="+14155550001", created_at=t)
    OptOutEventFactory(tenant=tenant, phone="+14155550001", created_at=t + timedelta(minutes=1))
    OptOutEventFactory(tenant=tenant, phone="+14155550002", created_at=t)
    OptOutEventFactory(tenant=tenant, phone="+14155550003", created_at=now - timedelta(days=10))
    # Older than 24 h, inside 7 days.
    TrafficFactory(tenant=tenant, status="delivered", at=now - timedelta(days=3))

    # Globex: everything fails, with an error Acme never had, plus inbound and opt-outs.
    for _ in range(30):
        TrafficFactory(tenant=other_tenant, status="failed", at=t, error_code=30008)
    for _ in range(5):
        TrafficFactory(tenant=other_tenant, status="received", at=t, direction="inbound")
    OptOutEventFactory(tenant=other_tenant, phone="+14155559999", created_at=t)
    return now


def test_delivery_stats_match_the_data(traffic, tenant):
    stats = delivery_stats(tenant=tenant, range_key="24h")

    assert {row.status: row.count for row in stats.by_status} == {
        "delivered": 5,
        "read": 1,
        "undelivered": 3,
        "failed": 1,
        "sent": 1,
        "blocked": 1,
    }
    assert stats.outbound_total == 12
    assert (stats.outcomes.delivered, stats.outcomes.failed, stats.outcomes.finished) == (6, 4, 10)
    assert stats.delivery_rate == pytest.approx(0.6)
    assert stats.delivery_rate_display == "60.0%"
    assert [(e.code, e.count) for e in stats.top_errors] == [(30003, 2), (30006, 1), (30007, 1)]
    assert stats.top_errors[0].explanation == explain(30003)
    assert stats.median_delivery_seconds == pytest.approx(35)
    assert stats.median_sample == 6
    assert stats.inbound_total == 3
    # 11 distinct recipients (the blocked one was never sent); 2 distinct numbers opted out.
    assert (stats.opted_out, stats.recipients) == (2, 11)
    assert stats.opt_out_rate == pytest.approx(2 / 11)
    # The chart holds every outbound message, in 24 hourly buckets.
    assert len(stats.buckets) == 24
    assert sum(b.total for b in stats.buckets) == 12
    assert stats.series_totals == {"delivered": 6, "in_progress": 1, "undelivered": 3, "failed": 1, "other": 1}


def test_messages_land_in_their_hour(tenant):
    now = datetime(2025, 6, 3, 15, 40, tzinfo=UTC)
    TrafficFactory(tenant=tenant, status="delivered", at=now - timedelta(hours=2, minutes=10))  # 13:30 UTC
    stats = delivery_stats(tenant=tenant, range_key="24h", now=now)
    (bucket,) = [b for b in stats.buckets if b.total]
    assert bucket.start.astimezone(UTC) == datetime(2025, 6, 3, 13, 0, tzinfo=UTC)
    assert bucket.counts == {"delivered": 1}
    assert stats.buckets[-1].start.astimezone(UTC) == datetime(2025, 6, 3, 15, 0, tzinfo=UTC)


def test_days_are_the_tenants_local_days(tenant):
    tenant.timezone = "America/Los_Angeles"
    tenant.save()
    now = datetime(2025, 6, 3, 12, 0, tzinfo=UTC)  # 05:00 in Los Angeles
    TrafficFactory(tenant=tenant, status="failed", at=datetime(2025, 6, 3, 3, 0, tzinfo=UTC))  # June 2, 20:00 local
    stats = delivery_stats(tenant=tenant, range_key="7d", now=now)
    assert len(stats.buckets) == 7
    (bucket,) = [b for b in stats.buckets if b.total]
    assert (bucket.start.date().isoformat(), bucket.counts) == ("2025-06-02", {"failed": 1})


@pytest.mark.parametrize("moment", ["2025-03-09T12:00:00+00:00", "2025-11-02T12:00:00+00:00"])
def test_hourly_buckets_are_one_hour_apart_across_dst(moment):
    starts = _bucket_starts(RANGES["24h"], datetime.fromisoformat(moment), zoneinfo.ZoneInfo("America/New_York"))
    utc = [s.astimezone(UTC) for s in starts]
    assert len(set(utc)) == 24
    assert all(b - a == timedelta(hours=1) for a, b in zip(utc, utc[1:], strict=False))


def test_ranges_widen(traffic, tenant):
    assert delivery_stats(tenant=tenant, range_key="7d").outbound_total == 13
    assert delivery_stats(tenant=tenant, range_key="30d").outbound_total == 13
    assert len(delivery_stats(tenant=tenant, range_key="30d").buckets) == 30
    # The 10-day-old opt-out only counts in 30 days.
    assert delivery_stats(tenant=tenant, range_key="7d").opted_out == 2
    assert delivery_stats(tenant=tenant, range_key="30d").opted_out == 3


def test_empty_tenant_has_no_rates(tenant):
    stats = delivery_stats(tenant=tenant)
    assert stats.outbound_total == 0
    assert stats.delivery_rate is None and stats.delivery_rate_display == "—"
    assert stats.median_delivery_seconds is None and stats.median_delivery_display == "—"
    assert stats.opt_out_rate is None


def test_format_duration():
    assert [format_duration(s) for s in (None, 35, 300, 7200)] == ["—", "35 s", "5.0 min", "2.0 h"]


def test_dashboard_page_shows_the_numbers_and_an_svg(client, traffic, tenant, viewer):
    client.force_login(viewer)
    response = client.get(f"/t/{tenant.slug}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<svg class="status-chart' in html
    assert 'role="img"' in html and '<title id="status-chart-title">' in html
    assert html.count("<rect ") >= 5  # segments (plus legend swatches)
    assert "<title>" in html.split('<g class="bars">')[1]  # every bar segment names its count
    assert 'data-stat="outbound">12<' in html
    assert 'data-stat="delivery-rate">60.0%<' in html
    assert 'data-stat="median-delivery">35 s<' in html
    assert 'data-stat="inbound">3<' in html
    assert 'data-stat="opt-out-rate">18.2%<' in html
    for code in (30003, 30006, 30007):
        assert f'data-error-code="{code}"' in html
        assert escape(explain(code)) in html
    # Globex's data never shows up here.
    assert "30008" not in html
    assert escape(explain(30008)) not in html


def test_dashboard_range_switch(client, traffic, tenant, viewer):
    client.force_login(viewer)
    assert client.get(f"/t/{tenant.slug}/?range=7d").context["stats"].outbound_total == 13
    response = client.get(f"/t/{tenant.slug}/?range=30d")
    assert response.context["stats"].range.key == "30d"
    assert 'aria-current="true">Last 30 days<' in response.content.decode()
    assert client.get(f"/t/{tenant.slug}/?range=bogus").context["stats"].range.key == "24h"


def test_stats_take_five_grouped_queries(traffic, tenant, django_assert_num_queries):
    with django_assert_num_queries(5):  # buckets+statuses, errors, median sample, opt-outs, recipients
        delivery_stats(tenant=tenant, range_key="30d")


def test_dashboard_uses_few_queries(client, traffic, tenant, viewer, django_assert_max_num_queries):
    client.force_login(viewer)
    client.get(f"/t/{tenant.slug}/")  # warm the session and content types
    # 14 before voice's calls panel (one query) and the second factor's device check (one).
    with django_assert_max_num_queries(16):
        assert client.get(f"/t/{tenant.slug}/?range=30d").status_code == 200


def test_other_tenant_sees_only_its_own(client, traffic, other_tenant, other_admin):
    client.force_login(other_admin)
    stats = client.get(f"/t/{other_tenant.slug}/").context["stats"]
    assert stats.outbound_total == 30
    assert stats.delivery_rate == 0
    assert [(e.code, e.count) for e in stats.top_errors] == [(30008, 30)]
    assert stats.inbound_total == 5
    assert (stats.opted_out, stats.recipients) == (1, 30)


def test_outcomes_by_tenant_counts_when_the_outcome_arrived(tenant, other_tenant):
    now = timezone.now()
    # Sent an hour ago, undelivered receipt 2 minutes ago: inside a 15-minute window.
    TrafficFactory(
        tenant=tenant, status="undelivered", at=now - timedelta(hours=1), status_updated_at=now - timedelta(minutes=2)
    )
    # Failed at once, no status_updated_at: created_at is its outcome time.
    TrafficFactory(tenant=tenant, status="failed", at=now - timedelta(minutes=3))
    TrafficFactory(
        tenant=tenant, status="delivered", at=now - timedelta(minutes=30), status_updated_at=now - timedelta(minutes=29)
    )
    TrafficFactory(tenant=tenant, status="sent", at=now - timedelta(minutes=1))  # no outcome yet
    TrafficFactory(tenant=other_tenant, status="delivered", at=now - timedelta(minutes=1))
    outcomes = outcomes_by_tenant(since=now - timedelta(minutes=15), until=now)
    assert (outcomes[tenant.id].delivered, outcomes[tenant.id].failed) == (0, 2)
    assert (outcomes[other_tenant.id].delivered, outcomes[other_tenant.id].failed) == (1, 0)


def test_support_overview_sorted_by_failure_rate(client, support_user, tenant, other_tenant):
    now = timezone.now()
    hooli, initech = TenantFactory(slug="hooli"), TenantFactory(slug="initech")
    for tenant_, delivered, failed in ((tenant, 6, 4), (other_tenant, 1, 9), (hooli, 5, 0)):
        for _ in range(delivered):
            TrafficFactory(tenant=tenant_, status="delivered", at=now - timedelta(hours=1))
        for _ in range(failed):
            TrafficFactory(tenant=tenant_, status="undelivered", at=now - timedelta(hours=1), error_code=30003)
    TrafficFactory(tenant=initech, status="failed", at=now - timedelta(days=2))  # outside 24 h: no rate

    client.force_login(support_user)
    response = client.get("/support/")
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [r["tenant"].slug for r in rows] == ["globex", "acme", "hooli", "initech"]
    assert [r["outcomes"].failure_rate for r in rows] == [0.9, 0.4, 0.0, None]
    html = response.content.decode()
    positions = [html.index(f'data-tenant="{slug}"') for slug in ("globex", "acme", "hooli", "initech")]
    assert positions == sorted(positions)
    assert "90.0%" in html and "40.0%" in html
    assert 'id="twilio-summary" data-status="unknown"' in html


def test_superuser_sees_support_overview(client, django_user_model, tenant):
    client.force_login(UserFactory(username="olga", superuser=True))
    assert client.get("/support/").status_code == 200
