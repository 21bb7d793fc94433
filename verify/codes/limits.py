"""Abuse limits on one-time codes, per number (or address) AND per client IP, counted from the
send log in the database so every process agrees: at least 60 s between two sends, at most 5
sends per hour; at most 5 code checks per verification (Verify's own limit, enforced before
Verify is asked, and the same for fallback codes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from ..models import StaffVerificationSend, VerificationSend
from .breaker import Scope

MIN_SEND_INTERVAL = timedelta(seconds=60)
SEND_WINDOW = timedelta(hours=1)
MAX_SENDS_PER_WINDOW = 5
MAX_CHECKS = 5


@dataclass(frozen=True)
class LimitVerdict:
    allowed: bool
    reason: str = ""  # "interval" | "hourly"
    retry_after: int = 0  # seconds


def sends_of(scope: Scope):
    """The scope's send log."""
    if scope.tenant is None:
        return StaffVerificationSend.objects.all()
    return VerificationSend.objects.for_tenant(scope.tenant)


def send_limit_check(*, scope: Scope, to: str, client_ip: str | None, now: datetime) -> LimitVerdict:
    """Whether one more code may go to `to` from `client_ip` now (one query)."""
    who = Q(to=to) | Q(client_ip=client_ip) if client_ip else Q(to=to)
    recent = list(sends_of(scope).filter(who, sent_at__gt=now - SEND_WINDOW).values_list("to", "client_ip", "sent_at"))
    for key, index in ((to, 0), (client_ip, 1)):
        if not key:
            continue
        times = sorted((row[2] for row in recent if row[index] == key), reverse=True)
        if times and now - times[0] < MIN_SEND_INTERVAL:
            return LimitVerdict(False, "interval", _seconds(times[0] + MIN_SEND_INTERVAL - now))
        if len(times) >= MAX_SENDS_PER_WINDOW:
            return LimitVerdict(False, "hourly", _seconds(times[MAX_SENDS_PER_WINDOW - 1] + SEND_WINDOW - now))
    return LimitVerdict(True)


def send_lock_names(*, scope: Scope, to: str, client_ip: str | None) -> tuple[str, ...]:
    """The locks a send holds from its check to its log entry: one per key the limits count."""
    where = f"tenant:{scope.tenant.pk}" if scope.tenant is not None else "platform"
    return (f"code-send:{where}:to:{to}", f"code-send:{where}:ip:{client_ip}" if client_ip else "")


def _seconds(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds() + 0.999))
