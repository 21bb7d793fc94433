"""Twilio reachability per tenant (tenants/monitoring.py): probed by the beat task against the
local Twilio sandbox and against a closed port, cached, and shown by /healthz — which stays
200 while Twilio is down (503 is for the database and the broker only)."""

from __future__ import annotations

import re
import socket
from datetime import datetime, timedelta

import pytest
from django.core.cache import cache

from tenants.models import Tenant
from tenants.monitoring import CACHE_KEY, reachability_summary
from tenants.tasks import twilio_reachability_check
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    cache.delete(CACHE_KEY)
    yield
    cache.delete(CACHE_KEY)


@pytest.fixture
def closed_port_settings(settings):
    """A base URL nothing listens on: connection refused, at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{port}"
    return settings


def healthz(client):
    response = client.get("/healthz")
    body = response.json()
    # Twilio never decides the status code: only the portal's own dependencies do.
    assert response.status_code == (200 if all(c["ok"] for c in body["checks"].values()) else 503)
    return response, body


def assert_no_secrets(response, *tenants):
    text = response.content.decode()
    for tenant in tenants:
        assert tenant.account_sid not in text
        assert tenant.auth_token.reveal() not in text


def test_reachable_through_the_sandbox(client, sandbox_settings, tenant, other_tenant):
    summary = twilio_reachability_check()
    assert (summary["status"], summary["tenants"], summary["failing"]) == ("ok", 2, 0)

    response, body = healthz(client)
    assert set(body["twilio"]) == {"acme", "globex"}
    acme = body["twilio"]["acme"]
    assert acme["ok"] is True and acme["checked_at"] and acme["ms"] >= 0
    assert body["twilio_summary"]["status"] == "ok" and body["twilio_summary"]["stale"] is False
    assert_no_secrets(response, tenant, other_tenant)


def test_closed_port_is_an_error_and_healthz_stays_up(client, closed_port_settings, tenant):
    summary = twilio_reachability_check()
    assert summary["status"] == "down" and summary["failing_tenants"] == ["acme"]

    response, body = healthz(client)
    acme = body["twilio"]["acme"]
    assert acme["ok"] is False and acme["error"] == "connection" and acme["code"] is None
    assert body["twilio_summary"]["status"] == "down"
    assert body["checks"]["database"]["ok"] is True
    assert "127.0.0.1" not in response.content.decode()  # no URLs or exception texts
    assert_no_secrets(response, tenant)


def test_wrong_credentials_show_as_auth_and_one_bad_tenant_is_degraded(client, sandbox, sandbox_settings):
    good = TenantFactory(slug="acme")
    bad = TenantFactory(slug="globex")
    sandbox.register_account(bad.account_sid, "f" * 32)  # Twilio knows another token for it
    summary = twilio_reachability_check()
    assert (summary["status"], summary["failing_tenants"]) == ("degraded", ["globex"])

    _, body = healthz(client)
    assert body["twilio"]["acme"]["ok"] is True
    assert body["twilio"]["globex"] | {"ms": 0, "checked_at": ""} == {
        "ok": False,
        "error": "auth",
        "code": 20003,
        "status": 401,
        "ms": 0,
        "checked_at": "",
    }
    assert good.slug in body["twilio"]


def test_only_active_tenants_are_probed(sandbox_settings, tenant):
    TenantFactory(slug="suspended-co", status=Tenant.Status.SUSPENDED)
    twilio_reachability_check()
    assert set(cache.get(CACHE_KEY)["tenants"]) == {"acme"}


def test_healthz_before_any_check(client, tenant):
    _, body = healthz(client)
    assert body["twilio"] == {}
    assert body["twilio_summary"]["status"] == "unknown"


def test_stale_results_are_flagged():
    checked = datetime.fromisoformat("2025-06-03T12:00:00+00:00")
    snapshot = {"checked_at": checked.isoformat(), "tenants": {"acme": {"ok": True}}}
    assert reachability_summary(snapshot, now=checked + timedelta(minutes=5))["stale"] is False
    assert reachability_summary(snapshot, now=checked + timedelta(minutes=20))["stale"] is True


def test_support_overview_shows_reachability(client, closed_port_settings, tenant, support_user):
    twilio_reachability_check()
    client.force_login(support_user)
    html = client.get("/support/").content.decode()
    assert 'id="twilio-summary" data-status="down"' in html
    assert ">connection</span>" in html
    # When it was checked, for people: a date, not the cache's ISO string.
    checked = re.search(r'Checked <time datetime="([^"]+)">([^<]+)</time>', html)
    assert checked and checked.group(1) == cache.get(CACHE_KEY)["checked_at"]
    assert "T" not in checked.group(2).split()[0] and re.search(r"\d\d:\d\d:\d\d", checked.group(2))
