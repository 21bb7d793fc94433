"""Twilio reachability per tenant, probed by a beat task and read from the cache.

`twilio_reachability_check` (every five minutes, `tenants.tasks.twilio_reachability_check`)
makes one harmless call per active tenant — fetching its own account, which every credential
type may read — with a short timeout, and stores the outcome in the Django cache.
`/healthz` and the support overview only read that cache: a page view never waits on Twilio.

What is stored never holds a secret, a SID or a phone number: per tenant slug only
`ok`, `error` (a kind: auth, timeout, connection, twilio_5xx, http_4xx, client), Twilio's
`code` and HTTP `status`, `ms` and `checked_at`.

The cache must be shared between the worker and the web processes: Redis via REDIS_URL, or
the embedded default's folder under var/cache (settings.CACHES).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import requests
from django.core.cache import cache
from django.utils import timezone

from . import twilio_codes
from .models import Tenant
from .twilio import TwilioError, tenant_client, twilio_errors

logger = logging.getLogger("commsportal.monitoring")

CACHE_KEY = "monitoring:twilio_reachability"
#: Kept well past the five-minute schedule, so a missed run shows as stale rather than unknown.
CACHE_TTL = 60 * 60
STALE_AFTER = timedelta(minutes=15)
#: Per request (connect and read each); Twilio answers an account fetch in well under a second.
PROBE_TIMEOUT = 4.0
PROBE_WORKERS = 8


def _error_kind(exc: TwilioError) -> str:
    cause = exc.__cause__
    if isinstance(cause, requests.Timeout):
        return "timeout"
    if isinstance(cause, requests.RequestException):
        return "connection"
    if exc.code in (twilio_codes.AUTHENTICATION_FAILED, 401) or exc.status in (401, 403):
        return "auth"
    if exc.status is not None and exc.status >= 500:
        return "twilio_5xx"
    return "http_4xx" if exc.status else "client"


def twilio_probe(*, tenant: Tenant) -> dict:
    """One harmless call as the tenant (fetch its own account); never raises."""
    started = time.monotonic()
    result: dict = {"ok": True}
    try:
        client = tenant_client(tenant)
        client.http_client.timeout = PROBE_TIMEOUT
        with twilio_errors():
            client.api.v2010.accounts(tenant.account_sid).fetch()
    except TwilioError as exc:
        result = {"ok": False, "error": _error_kind(exc), "code": exc.code, "status": exc.status}
    except Exception as exc:  # noqa: BLE001 - e.g. an undecryptable token: report, don't crash the run
        logger.warning("twilio.reachability.client_error", extra={"tenant": tenant.slug, "error": type(exc).__name__})
        result = {"ok": False, "error": "client", "code": None, "status": None}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    result["checked_at"] = timezone.now().isoformat()
    return result


def twilio_reachability_check() -> dict:
    """Probe every active tenant (a few at a time) and cache the results; returns the summary."""
    tenants = list(Tenant.objects.filter(status=Tenant.Status.ACTIVE).order_by("slug"))
    with ThreadPoolExecutor(max_workers=PROBE_WORKERS) as pool:
        results = dict(zip((t.slug for t in tenants), pool.map(lambda t: twilio_probe(tenant=t), tenants), strict=True))
    snapshot = {"checked_at": timezone.now().isoformat(), "tenants": results}
    cache.set(CACHE_KEY, snapshot, CACHE_TTL)
    failing = sorted(slug for slug, r in results.items() if not r["ok"])
    if failing:
        logger.warning("twilio.reachability.failing", extra={"tenants": failing[:50], "count": len(failing)})
    return reachability_summary(snapshot)


def reachability_snapshot() -> dict | None:
    """The last check's results as cached, or None (never checked, expired, cache down)."""
    try:
        return cache.get(CACHE_KEY)
    except Exception:  # noqa: BLE001 - a cache outage must not break /healthz
        logger.warning("twilio.reachability.cache_unavailable", exc_info=True)
        return None


def reachability_summary(snapshot: dict | None, *, now: datetime | None = None) -> dict:
    """At a glance: status ok | degraded (some tenants failing) | down (all) | unknown."""
    if not snapshot:
        return {"status": "unknown", "checked_at": None, "stale": True, "tenants": 0, "failing": 0}
    results = snapshot.get("tenants", {})
    failing = sorted(slug for slug, r in results.items() if not r.get("ok"))
    checked_at = snapshot.get("checked_at")
    stale = True
    if checked_at:
        stale = (now or timezone.now()) - datetime.fromisoformat(checked_at) > STALE_AFTER
    if not results:
        status = "unknown"
    elif not failing:
        status = "ok"
    elif len(failing) == len(results):
        status = "down"
    else:
        status = "degraded"
    return {
        "status": status,
        "checked_at": checked_at,
        "stale": stale,
        "tenants": len(results),
        "failing": len(failing),
        "failing_tenants": failing[:20],
    }
