"""Wrong second-factor codes, throttled per (account, client address) the way django-axes
throttles wrong passwords (tenants/login_throttle.py): the same limit (`AXES_FAILURE_LIMIT`) and
cool-off (`AXES_COOLOFF_TIME`), counted from the last failure before the lock (tries while
locked are not counted and do not extend it), so someone guessing from elsewhere never locks the
owner out. A right code clears the pair. The operator lifts a lock with
`manage.py second_factor_unlock USERNAME [--ip IP]`.

Our own rows rather than axes' `AccessAttempt`s: axes clears a pair's failures on every right
password (`AXES_RESET_ON_SUCCESS`), so someone who knows the password could sign in again after
each few wrong codes and guess forever.
"""

from __future__ import annotations

from datetime import datetime

from axes.helpers import get_cool_off
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tenants.audit import AuditContext
from tenants.services import audit_record
from verify.models import SecondFactorThrottle


def _pair(username: str, ip_address: str | None) -> dict:
    return {"username": username, "ip_address": ip_address or ""}


def code_lock_ends_at(*, username: str, ip_address: str | None) -> datetime | None:
    """When this pair may try codes again, or None when it is not locked."""
    row = SecondFactorThrottle.objects.filter(**_pair(username, ip_address)).first()
    if row is None or row.failures < settings.AXES_FAILURE_LIMIT:
        return None
    ends_at = row.last_failure_at + get_cool_off()
    return ends_at if ends_at > timezone.now() else None


@transaction.atomic
def code_failure_record(*, username: str, ip_address: str | None) -> datetime | None:
    """Count one wrong code for the pair; returns when the lock ends if this one reached the
    limit. A cool-off that has passed starts the count again."""
    now = timezone.now()
    row, created = SecondFactorThrottle.objects.select_for_update().get_or_create(
        **_pair(username, ip_address), defaults={"failures": 1, "last_failure_at": now}
    )
    if not created:
        if row.last_failure_at + get_cool_off() <= now:
            row.failures, row.last_failure_at = 1, now
            row.save(update_fields=["failures", "last_failure_at"])
        elif row.failures < settings.AXES_FAILURE_LIMIT:
            SecondFactorThrottle.objects.filter(pk=row.pk).update(failures=F("failures") + 1, last_failure_at=now)
            row.refresh_from_db()
    return code_lock_ends_at(username=username, ip_address=ip_address)


def code_failures_clear(*, username: str, ip_address: str | None) -> None:
    """A right code: the pair starts from nothing again."""
    SecondFactorThrottle.objects.filter(**_pair(username, ip_address)).delete()


def code_lock_reset(*, username: str, ip_address: str | None = None, audit: AuditContext) -> int:
    """The operator lifts the locks on `username` (from every address, or from `ip_address`);
    returns how many pairs were cleared, and audits it when there were any."""
    rows = SecondFactorThrottle.objects.filter(username=username)
    if ip_address is not None:
        rows = rows.filter(ip_address=ip_address)
    cleared, _ = rows.delete()
    if cleared:
        audit_record(
            action="second_factor.unlocked",
            tenant=None,
            audit=audit,
            target=username,
            details={"ip_address": ip_address or "every address", "pairs": cleared},
        )
    return cleared
