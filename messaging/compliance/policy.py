"""The tenant's sending policy: read (created with defaults on first use) and changed (audited,
under the row's lock)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time

from django.core.exceptions import ValidationError
from django.db import transaction

from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.services import audit_record

from ..models import SendingPolicy


def sending_policy_get(*, tenant: Tenant) -> SendingPolicy:
    """The tenant's sending policy, created with the defaults the first time it is needed."""
    policy, _ = SendingPolicy.objects.get_or_create(tenant=tenant)
    return policy


# --- Sending policy ----------------------------------------------------------------------------


def _policy_value(name: str, value):
    """A policy field's value as compared and audited: times as "HH:MM", the rate as a float."""
    if name in ("quiet_start", "quiet_end"):
        value = value if isinstance(value, time) else time.fromisoformat(str(value))
        return value.isoformat(timespec="minutes") if not (value.second or value.microsecond) else value.isoformat()
    if name == "messages_per_second":
        return float(value)
    return value


def _as_time(value) -> time:
    return time.fromisoformat(value) if isinstance(value, str) else value


@transaction.atomic
def sending_policy_update(*, tenant: Tenant, changes: dict, audit: AuditContext) -> list[str]:
    """Apply an admin's edits to the tenant's policy; returns the names of the fields that
    changed. `changes` holds only the fields the admin edited (`SendingPolicyForm.changes()`):
    any other value the form showed may predate another admin's save and must not be written
    back. Under a row lock, each is compared with the row as it is now; only those that differ
    are written (``update_fields``), and one ``sending_policy.update`` audit event records each
    as [value in the database, new value]. Nothing changed: no write, no audit."""
    policy, _ = SendingPolicy.objects.select_for_update().get_or_create(tenant=tenant)
    details = {}
    for name, value in changes.items():
        old, new = _policy_value(name, getattr(policy, name)), _policy_value(name, value)
        if old != new:
            details[name] = [old, new]
            setattr(policy, name, value)
    if details and not _as_time(policy.quiet_start) < _as_time(policy.quiet_end):
        # Checked again here, under the lock, whatever the caller validated: a window that never
        # opens would hold every marketing message for good.
        raise ValidationError(
            f"The window must open before it closes: {_as_time(policy.quiet_start):%H:%M}-"
            f"{_as_time(policy.quiet_end):%H:%M} never opens."
        )
    if details:
        policy.save(update_fields=list(details))
        audit_record(action="sending_policy.update", tenant=tenant, audit=audit, details=details)
    return list(details)


@transaction.atomic
def sending_policy_edit(
    *, tenant: Tenant, edit: Callable[[SendingPolicy], dict | None], audit: AuditContext
) -> list[str] | None:
    """Validate and save an admin's edit under the policy row's lock.

    `edit` gets the locked row (the form validates against it) and returns the edited fields,
    or None when the edit is invalid (nothing is written then, and None is returned). Holding
    the lock across validation makes two admins saving at once be checked one after the other,
    each against what the other saved: two edits that are each fine alone (opening 19:00,
    closing 10:00) must not make a window that never opens.
    """
    locked = SendingPolicy.objects.select_for_update().get(tenant=tenant)
    changes = edit(locked)
    if changes is None:
        return None
    return sending_policy_update(tenant=tenant, changes=changes, audit=audit)
