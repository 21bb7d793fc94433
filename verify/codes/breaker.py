"""The Verify circuit breaker, one per (scope, channel), kept in the database so every web and
worker process sees the same state (`VerifyBreaker`).

closed --Verify fails on its side--> open --cool-down passed, one request claims the probe-->
half_open --probe succeeds--> closed (or --probe fails--> open again, cool-down restarts).

Only failures that are Twilio's (a 5xx answer, a timeout, a refused or dropped connection)
trip it. A 4xx (60200 invalid parameter, 60203, 20429 …) is an answer about our request: it
proves Verify is up and never trips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from tenants.twilio import TwilioError

from ..models import VerifyBreaker

#: How long one request may hold the half-open probe before another may try (a probe that
#: hangs until the HTTP timeout must not keep the breaker half-open forever).
PROBE_LEASE_EXTRA = timedelta(seconds=5)

#: What `breaker_route` tells the caller to do.
VERIFY = "verify"  # closed: use Verify
PROBE = "probe"  # this request is the probe: use Verify, report the outcome
FALLBACK = "fallback"  # open: send the portal's own code


@dataclass(frozen=True)
class Scope:
    """A tenant, or the platform itself when `tenant` is None."""

    tenant: object | None

    @property
    def key(self) -> str:
        return f"tenant:{self.tenant.pk}" if self.tenant is not None else "platform"


def breaker_trips(error: TwilioError) -> bool:
    """Whether `error` says Verify itself is failing: no answer at all, or a 5xx."""
    return error.status is None or 500 <= error.status <= 599


def _cooldown() -> timedelta:
    return timedelta(seconds=settings.VERIFY_BREAKER_COOLDOWN_SECONDS)


def _probe_lease() -> timedelta:
    return timedelta(seconds=settings.TWILIO_HTTP_TIMEOUT) + PROBE_LEASE_EXTRA


def _breakers(scope: Scope, channel: str):
    return VerifyBreaker.objects.filter(scope=scope.key, channel=channel)


def breaker_route(*, scope: Scope, channel: str, now: datetime | None = None) -> str:
    """VERIFY, PROBE or FALLBACK for the next request of (scope, channel).

    While open, the first request after the cool-down claims the probe with a conditional
    UPDATE, so across processes exactly one request probes at a time; the others fall back.
    """
    now = now or timezone.now()
    breaker = _breakers(scope, channel).first()
    if breaker is None or breaker.state == VerifyBreaker.State.CLOSED:
        return VERIFY
    if breaker.state == VerifyBreaker.State.OPEN and now < breaker.opened_at + _cooldown():
        return FALLBACK
    if breaker.state == VerifyBreaker.State.HALF_OPEN and breaker.probe_until and now < breaker.probe_until:
        return FALLBACK
    claimed = (
        _breakers(scope, channel)
        .filter(state=breaker.state, opened_at=breaker.opened_at, probe_until=breaker.probe_until)
        .update(state=VerifyBreaker.State.HALF_OPEN, probe_until=now + _probe_lease())
    )
    return PROBE if claimed else FALLBACK


def breaker_record_success(*, scope: Scope, channel: str) -> None:
    """Verify answered: close the breaker (one UPDATE, none at all while it is closed)."""
    _breakers(scope, channel).filter(~Q(state=VerifyBreaker.State.CLOSED) | Q(failures__gt=0)).update(
        state=VerifyBreaker.State.CLOSED, failures=0, opened_at=None, probe_until=None, last_error=""
    )


def breaker_record_failure(*, scope: Scope, channel: str, error: TwilioError, now: datetime | None = None) -> None:
    """Verify failed on its side: open the breaker (again), the cool-down counting from now."""
    now = now or timezone.now()
    fields = {
        "state": VerifyBreaker.State.OPEN,
        "opened_at": now,
        "probe_until": None,
        "last_error": str(error)[:500],
    }
    breaker = _breakers(scope, channel).first()
    if breaker is None:
        try:
            with transaction.atomic():
                VerifyBreaker.objects.create(
                    scope=scope.key, tenant=scope.tenant, channel=channel, failures=1, **fields
                )
            return
        except IntegrityError:  # another process created it meanwhile
            breaker = _breakers(scope, channel).first()
    _breakers(scope, channel).update(failures=(breaker.failures if breaker else 0) + 1, **fields)


def breaker_states(*, tenant_ids=None) -> dict[int | None, list[VerifyBreaker]]:
    """Every breaker that is not closed, by tenant id (None: the platform's), for the support
    overview: a deliberate cross-tenant read of platform infrastructure."""
    rows = VerifyBreaker.objects.exclude(state=VerifyBreaker.State.CLOSED).order_by("scope", "channel")
    found: dict[int | None, list[VerifyBreaker]] = {}
    for row in rows:
        found.setdefault(row.tenant_id, []).append(row)
    return found
