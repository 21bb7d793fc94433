"""The delivery failure-rate alert, registered in `tenants.registry.alert_checks`.

tenants raises, clears and emails alerts; this module only says when a tenant's outbound
delivery went wrong:

* **failure_rate** — raised when, over the last 15 minutes, at least 20 outbound messages
  finished (delivered + undelivered + failed, by the time their outcome arrived) and more than
  5% of them were undelivered or failed (`messaging.monitoring`). Cleared when the rate over the
  last 15 minutes is at most 2.5% (half the threshold, so a rate hovering around 5% does not
  raise, clear and raise again every few minutes) or nothing finished in the window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tenants.models import Alert
from tenants.registry import AlertCheck, AlertReading

from .monitoring import Outcomes, outcomes_by_tenant

FAILURE_WINDOW = timedelta(minutes=15)
FAILURE_MIN_MESSAGES = 20
FAILURE_RATE_THRESHOLD = 0.05
FAILURE_CLEAR_RATE = 0.025


def failure_rate_breached(*, delivered: int, failed: int) -> bool:
    finished = delivered + failed
    return finished >= FAILURE_MIN_MESSAGES and failed / finished > FAILURE_RATE_THRESHOLD


def failure_rate_recovered(*, delivered: int, failed: int) -> bool:
    finished = delivered + failed
    return finished == 0 or failed / finished <= FAILURE_CLEAR_RATE


def _reading(outcomes: Outcomes, *, now: datetime) -> AlertReading:
    delivered, failed = outcomes.delivered, outcomes.failed
    details = {
        "window_minutes": int(FAILURE_WINDOW.total_seconds() // 60),
        "finished": delivered + failed,
        "failed": failed,
        "rate": round(failed / (delivered + failed), 4) if delivered + failed else 0.0,
        "threshold": FAILURE_RATE_THRESHOLD,
        "checked_at": now.isoformat(),
    }
    return AlertReading(
        breached=failure_rate_breached(delivered=delivered, failed=failed),
        recovered=failure_rate_recovered(delivered=delivered, failed=failed),
        details=details,
    )


def failure_rate_readings(*, now: datetime) -> dict[int, AlertReading]:
    """Every tenant with outcomes in the last FAILURE_WINDOW: one grouped query."""
    outcomes = outcomes_by_tenant(since=now - FAILURE_WINDOW, until=now)
    return {tenant_id: _reading(o, now=now) for tenant_id, o in outcomes.items()}


def failure_rate_idle(*, now: datetime) -> AlertReading:
    """A tenant with nothing finished in the window: recovered."""
    return _reading(Outcomes(), now=now)


FAILURE_RATE_CHECK = AlertCheck(
    key=Alert.Kind.FAILURE_RATE,
    evaluate=failure_rate_readings,
    idle=failure_rate_idle,
    advice=(
        "Open the dashboard for the top error codes and what they mean. A sudden rise usually is "
        "carrier filtering (30007), an unregistered 10DLC number (30034) or a bad contact list."
    ),
)
