"""A tenant's subaccount over its life, and the rotation of its credentials.

Platform-operator writes (superusers, `tenants/operator_views.py`; `create_tenant` for the
command line). Rules every service here keeps:

* Twilio first, then the database: when Twilio refuses (e.g. 21478, Twilio itself suspended the
  account), the `TwilioError` goes back to the caller with its explanation and nothing local
  changes. The attempt is still audited (`….failed`), because a refused privileged action is
  worth knowing about.
* Every change is audited; audit details name SIDs and error codes, never a secret.
* Writes to the tenant row name their columns (`update_fields`), so a rotation never rewrites
  fields another request changed meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .audit import AuditContext
from .crypto import Secret
from .models import Tenant
from .services import audit_record, tenant_upsert
from .twilio import TwilioError, credentials_client, parent_client, tenant_auth_token_client, twilio_errors

logger = logging.getLogger("commsportal.lifecycle")

# A key Twilio has just issued can take a moment to authenticate everywhere: verification
# retries before it declares the key broken and rolls back.
KEY_VERIFY_ATTEMPTS = 3
KEY_VERIFY_DELAY = 1.0  # seconds between attempts


class LifecycleError(Exception):
    """An action refused before Twilio was called: wrong state, missing confirmation."""


class RotationError(LifecycleError):
    """A new credential did not work and was rolled back; the old one is still in use."""

    def __init__(self, message: str, *, cause: TwilioError | None = None) -> None:
        super().__init__(message)
        self.cause = cause


# --- Subaccounts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subaccount:
    sid: str
    friendly_name: str
    status: str
    auth_token: Secret
    created: bool  # False: an existing subaccount was found and reused


def subaccount_find_or_create(*, friendly_name: str, account_sid: str = "") -> Subaccount:
    """The parent account's subaccount for a tenant, created only when there is none.

    With `account_sid` (the tenant is already linked) that account is fetched: never a second
    one, even under a new name. Otherwise an open subaccount named `friendly_name` that no tenant
    uses yet is reused (a previous attempt died after creating it), else one is created.
    Raises `TwilioError`.
    """
    with twilio_errors():
        accounts = parent_client().api.v2010.accounts
        created = False
        if account_sid:
            account = accounts(account_sid).fetch()
        else:
            candidates = [a for a in accounts.list(friendly_name=friendly_name) if a.status != "closed"]
            taken = set(
                Tenant.objects.filter(account_sid__in=[a.sid for a in candidates]).values_list("account_sid", flat=True)
            )
            free = [a for a in candidates if a.sid not in taken]
            if free:
                account = free[0]
            else:
                account = accounts.create(friendly_name=friendly_name)
                created = True
    return Subaccount(
        sid=account.sid,
        friendly_name=account.friendly_name,
        status=account.status,
        auth_token=Secret(account.auth_token or ""),
        created=created,
    )


def tenant_create(
    *, slug: str, name: str, audit: AuditContext, fields: dict | None = None
) -> tuple[Tenant, Subaccount]:
    """Create tenant `slug` on a new (or found, see `subaccount_find_or_create`) subaccount."""
    if Tenant.objects.filter(slug=slug).exists():
        raise LifecycleError(f"A tenant with the slug “{slug}” already exists.")
    sub = subaccount_find_or_create(friendly_name=name)
    with transaction.atomic():
        tenant, _ = tenant_upsert(
            slug=slug,
            fields={
                "name": name,
                "account_sid": sub.sid,
                "auth_token": sub.auth_token,
                "status": sub.status,
                **(fields or {}),
            },
            audit=audit,
        )
        audit_record(
            action="subaccount.create" if sub.created else "subaccount.reuse",
            tenant=tenant,
            audit=audit,
            target=sub.sid,
            details={"friendly_name": sub.friendly_name, "status": sub.status},
        )
    return tenant, sub


PAST_TENSE = {"suspend": "suspended", "reactivate": "reactivated", "close": "closed"}
# Action -> (local statuses it may start from, the status it sets at Twilio and here).
_STATUS_ACTIONS = {
    "suspend": ({Tenant.Status.ACTIVE}, Tenant.Status.SUSPENDED),
    "reactivate": ({Tenant.Status.SUSPENDED}, Tenant.Status.ACTIVE),
    "close": ({Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED}, Tenant.Status.CLOSED),
}


def _status_change(*, tenant: Tenant, action: str, audit: AuditContext, reason: str) -> Tenant:
    allowed_from, target = _STATUS_ACTIONS[action]
    tenant = Tenant.objects.get(pk=tenant.pk)
    if tenant.status not in allowed_from:
        raise LifecycleError(
            f"{tenant.name} is {tenant.get_status_display().lower()}: it cannot be {PAST_TENSE[action]}."
        )
    try:
        with twilio_errors():
            parent_client().api.v2010.accounts(tenant.account_sid).update(status=target)
    except TwilioError as exc:
        logger.warning(
            "tenant.status_change_failed",
            extra={"tenant": tenant.slug, "action": action, "code": exc.code, "status": exc.status},
        )
        audit_record(
            action=f"tenant.{action}.failed",
            tenant=tenant,
            audit=audit,
            target=tenant.account_sid,
            reason=reason,
            details={"code": exc.code, "http_status": exc.status, "explanation": exc.explanation},
        )
        raise
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        before = locked.status
        locked.status = target
        locked.save(update_fields=["status", "updated_at"])
        audit_record(
            action=f"tenant.{action}",
            tenant=locked,
            audit=audit,
            target=locked.account_sid,
            reason=reason,
            details={"from": before, "to": target},
        )
    logger.info("tenant.status_changed", extra={"tenant": locked.slug, "from": before, "to": target})
    return locked


def tenant_suspend(*, tenant: Tenant, audit: AuditContext, reason: str = "") -> Tenant:
    """Suspend the subaccount at Twilio (no SMS or calls, numbers kept and billed), then here."""
    return _status_change(tenant=tenant, action="suspend", audit=audit, reason=reason)


def tenant_reactivate(*, tenant: Tenant, audit: AuditContext, reason: str = "") -> Tenant:
    """Reactivate a suspended subaccount. Fails with 21478 when Twilio itself suspended it."""
    return _status_change(tenant=tenant, action="reactivate", audit=audit, reason=reason)


def tenant_close(*, tenant: Tenant, confirm_slug: str, audit: AuditContext, reason: str = "") -> Tenant:
    """Close the subaccount for good: Twilio releases its numbers and voids its credentials.

    Irreversible, so the operator confirms by typing the tenant's slug. The tenant's logs,
    ledgers and audit trail stay readable here; sending stops (`Tenant.can_send`).
    """
    if (confirm_slug or "").strip() != tenant.slug:
        raise LifecycleError(f"Type the tenant's slug “{tenant.slug}” to confirm closing it.")
    return _status_change(tenant=tenant, action="close", audit=audit, reason=reason)


# --- Credential rotation -------------------------------------------------------------------------


def _audit_failure(action: str, tenant: Tenant, audit: AuditContext, target: str, step: str, exc, **details) -> None:
    """A credential step Twilio refused, on the record with Twilio's code and HTTP status."""
    audit_record(
        action=action,
        tenant=tenant,
        audit=audit,
        target=target,
        details={"step": step, "code": exc.code, "http_status": exc.status, **details},
    )


def _require_active(tenant: Tenant) -> None:
    # Twilio refuses a suspended or closed account's own credentials (401), so nothing can be
    # created or verified with them.
    if tenant.status != Tenant.Status.ACTIVE:
        raise LifecycleError(
            f"{tenant.name} is {tenant.get_status_display().lower()}: credentials can only be rotated while active."
        )


def _retrying(call: Callable[[], object], *, attempts: int, delay: float) -> None:
    """Run `call` until it succeeds; the last TwilioError is raised after `attempts` tries."""
    for attempt in range(1, attempts + 1):
        try:
            with twilio_errors():
                call()
            return
        except TwilioError:
            if attempt == attempts:
                raise
            time.sleep(delay)


def _key_delete(tenant: Tenant, key_sid: str) -> bool:
    """Delete an API key at Twilio; True when it is gone (already gone counts). Never raises."""
    try:
        with twilio_errors():
            tenant_auth_token_client(tenant).api.v2010.accounts(tenant.account_sid).keys(key_sid).delete()
    except TwilioError as exc:
        if exc.status == 404:
            return True
        logger.warning(
            "credentials.api_key_delete_failed",
            extra={"tenant": tenant.slug, "key_sid": key_sid, "code": exc.code, "status": exc.status},
        )
        return False
    return True


def _save(tenant: Tenant, **fields) -> None:
    for name, value in fields.items():
        setattr(tenant, name, value)
    tenant.save(update_fields=[*fields, "updated_at"])


@dataclass(frozen=True)
class KeyRotation:
    new_key_sid: str
    old_key_sid: str  # "" when the tenant used its auth token before
    old_key_revoked: bool  # False: revoke `old_key_sid` in the Twilio console (see the audit log)


def api_key_rotate(*, tenant: Tenant, audit: AuditContext) -> KeyRotation:
    """Rotate the tenant's API key in one step: create, store, verify, switch, revoke the old.

    1. A new key is created at Twilio with the tenant's auth token (a standard API key may not
       manage keys) and stored encrypted as *pending* at once, so an interrupted rotation
       leaves a key the next run can find and delete, never an orphan nobody knows about.
    2. The new key fetches the tenant's own account (harmless). If it never works, it is
       deleted at Twilio and the old key stays in use: `RotationError`.
    3. The tenant switches to the new key, then the old key is deleted at Twilio. A failed
       deletion does not undo the switch; it is audited for the operator to finish.

    Raises `TwilioError` when the key can't even be created (nothing changed).
    """
    tenant = Tenant.objects.get(pk=tenant.pk)
    _require_active(tenant)
    if tenant.pending_api_key_sid:
        _api_key_leftover_delete(tenant, audit=audit)
    key, secret = _api_key_create_pending(tenant, audit=audit)
    _api_key_verify(tenant, key_sid=key.sid, secret=secret, audit=audit)

    old_sid = tenant.api_key_sid
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        _save(
            locked,
            api_key_sid=key.sid,
            api_key_secret=secret,
            pending_api_key_sid="",
            pending_api_key_secret="",
        )
        audit_record(
            action="credentials.api_key_rotated",
            tenant=locked,
            audit=audit,
            target=key.sid,
            details={"old_key_sid": old_sid, "new_key_sid": key.sid},
        )
    revoked = True
    if old_sid and old_sid != key.sid:
        revoked = _key_delete(locked, old_sid)
        if not revoked:
            audit_record(
                action="credentials.api_key_revoke.failed",
                tenant=locked,
                audit=audit,
                target=old_sid,
                details={"old_key_sid": old_sid},
            )
    logger.info(
        "credentials.api_key_rotated",
        extra={"tenant": locked.slug, "new_key_sid": key.sid, "old_key_sid": old_sid, "old_revoked": revoked},
    )
    return KeyRotation(new_key_sid=key.sid, old_key_sid=old_sid, old_key_revoked=revoked)


def _api_key_leftover_delete(tenant: Tenant, *, audit: AuditContext) -> None:
    """Delete the pending key an interrupted rotation left: it was never verified or used."""
    leftover = tenant.pending_api_key_sid
    if not _key_delete(tenant, leftover):
        audit_record(
            action="credentials.api_key_revoke.failed",
            tenant=tenant,
            audit=audit,
            target=leftover,
            details={"leftover_key_sid": leftover},
        )
    _save(tenant, pending_api_key_sid="", pending_api_key_secret="")


def _api_key_create_pending(tenant: Tenant, *, audit: AuditContext):
    """Step 1 of `api_key_rotate`: create the key at Twilio and store it as pending at once."""
    label = f"commsportal {tenant.slug} {timezone.now():%Y-%m-%d %H:%M}"
    try:
        with twilio_errors():
            key = (
                tenant_auth_token_client(tenant)
                .api.v2010.accounts(tenant.account_sid)
                .new_keys.create(friendly_name=label)
            )
    except TwilioError as exc:
        _audit_failure("credentials.api_key_rotation.failed", tenant, audit, tenant.api_key_sid, "create", exc)
        raise
    secret = Secret(key.secret)
    _save(tenant, pending_api_key_sid=key.sid, pending_api_key_secret=secret)
    return key, secret


def _api_key_verify(tenant: Tenant, *, key_sid: str, secret: Secret, audit: AuditContext) -> None:
    """Step 2 of `api_key_rotate`: the new key must work, else it is deleted (`RotationError`)."""
    with_new_key = credentials_client(account_sid=tenant.account_sid, username=key_sid, password=secret.reveal())
    try:
        _retrying(
            lambda: with_new_key.api.v2010.accounts(tenant.account_sid).fetch(),
            attempts=KEY_VERIFY_ATTEMPTS,
            delay=KEY_VERIFY_DELAY,
        )
    except TwilioError as exc:
        deleted = _key_delete(tenant, key_sid)
        _save(tenant, pending_api_key_sid="", pending_api_key_secret="")
        _audit_failure(
            "credentials.api_key_rotation.failed",
            tenant,
            audit,
            key_sid,
            "verify",
            exc,
            new_key_deleted=deleted,
        )
        raise RotationError(
            f"The new API key {key_sid} did not work ({exc}); it was "
            f"{'deleted' if deleted else 'NOT deleted, delete it in the Twilio console'} "
            "and the current key stays in use.",
            cause=exc,
        ) from exc


def auth_token_rotation_start(*, tenant: Tenant, audit: AuditContext) -> None:
    """Step 1 of an auth token rotation: create a secondary auth token at Twilio.

    It is checked (it fetches the account), then stored encrypted as the tenant's secondary
    token. From then until `auth_token_rotation_promote`, webhooks validate with either token,
    so deploying the new token anywhere else can happen without a gap. Raises `TwilioError`
    when Twilio refuses to create it, `RotationError` when it was created but did not work
    (it is deleted again); nothing changes locally in either case.
    """
    tenant = Tenant.objects.get(pk=tenant.pk)
    _require_active(tenant)
    if tenant.secondary_auth_token:
        raise LifecycleError("An auth token rotation is already under way: promote or cancel it first.")
    admin = tenant_auth_token_client(tenant)

    def failed(step: str, exc: TwilioError) -> None:
        _audit_failure("credentials.auth_token_rotation.failed", tenant, audit, tenant.account_sid, step, exc)

    try:
        with twilio_errors():
            token = Secret(admin.accounts.v1.secondary_auth_token().create().secondary_auth_token)
    except TwilioError as exc:
        failed("create_secondary", exc)
        raise
    with_new = credentials_client(account_sid=tenant.account_sid, username=tenant.account_sid, password=token.reveal())
    try:
        _retrying(
            lambda: with_new.api.v2010.accounts(tenant.account_sid).fetch(),
            attempts=KEY_VERIFY_ATTEMPTS,
            delay=KEY_VERIFY_DELAY,
        )
    except TwilioError as exc:
        _secondary_delete_quietly(tenant)
        failed("verify_secondary", exc)
        raise RotationError(
            f"The new secondary auth token did not work ({exc}); it was discarded and the current token stays in use.",
            cause=exc,
        ) from exc
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        _save(locked, secondary_auth_token=token)
        audit_record(
            action="credentials.auth_token_secondary_created",
            tenant=locked,
            audit=audit,
            target=locked.account_sid,
        )
    logger.info("credentials.auth_token_secondary_created", extra={"tenant": tenant.slug})


def _secondary_delete_quietly(tenant: Tenant) -> None:
    try:
        with twilio_errors():
            tenant_auth_token_client(tenant).accounts.v1.secondary_auth_token().delete()
    except TwilioError as exc:
        logger.warning(
            "credentials.secondary_delete_failed", extra={"tenant": tenant.slug, "code": exc.code, "status": exc.status}
        )


def _promoted_already(tenant: Tenant, new_token: str) -> bool:
    """Whether Twilio already made `new_token` the primary (an earlier promote whose answer
    was lost): the old primary is refused and the new token works."""
    try:
        with twilio_errors():
            tenant_auth_token_client(tenant).api.v2010.accounts(tenant.account_sid).fetch()
        return False
    except TwilioError as exc:
        if exc.status != 401:
            return False
    try:
        with twilio_errors():
            credentials_client(
                account_sid=tenant.account_sid, username=tenant.account_sid, password=new_token
            ).api.v2010.accounts(tenant.account_sid).fetch()
    except TwilioError:
        return False
    return True


def auth_token_rotation_promote(*, tenant: Tenant, audit: AuditContext) -> None:
    """Step 2: promote the secondary token to primary at Twilio, then store it as the primary.

    After this only the new token validates webhooks (Twilio signs with its primary).
    """
    tenant = Tenant.objects.get(pk=tenant.pk)
    new_token = tenant.secondary_auth_token.reveal()
    if not new_token:
        raise LifecycleError("No auth token rotation is under way: create a secondary token first.")
    try:
        with twilio_errors():
            credentials_client(
                account_sid=tenant.account_sid, username=tenant.account_sid, password=new_token
            ).accounts.v1.auth_token_promotion().update()
    except TwilioError as exc:
        if not _promoted_already(tenant, new_token):
            _audit_failure("credentials.auth_token_rotation.failed", tenant, audit, tenant.account_sid, "promote", exc)
            raise
        logger.info("credentials.auth_token_promoted_earlier", extra={"tenant": tenant.slug})
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        _save(locked, auth_token=Secret(new_token), secondary_auth_token="")
        audit_record(
            action="credentials.auth_token_promoted",
            tenant=locked,
            audit=audit,
            target=locked.account_sid,
        )
    logger.info("credentials.auth_token_promoted", extra={"tenant": tenant.slug})


def auth_token_rotation_cancel(*, tenant: Tenant, audit: AuditContext) -> None:
    """Abandon a rotation: delete the secondary token at Twilio and forget it here."""
    tenant = Tenant.objects.get(pk=tenant.pk)
    if not tenant.secondary_auth_token:
        raise LifecycleError("No auth token rotation is under way.")
    try:
        with twilio_errors():
            tenant_auth_token_client(tenant).accounts.v1.secondary_auth_token().delete()
    except TwilioError as exc:
        if exc.status != 404:
            _audit_failure("credentials.auth_token_rotation.failed", tenant, audit, tenant.account_sid, "cancel", exc)
            raise
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        _save(locked, secondary_auth_token="")
        audit_record(
            action="credentials.auth_token_rotation_cancelled",
            tenant=locked,
            audit=audit,
            target=locked.account_sid,
        )
