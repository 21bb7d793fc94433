"""Writes to the opt-out and consent ledgers (append-only, audited) and the tenant's own
keywords. The revocation review queue is `messaging.ledgers.revocations`; the sending policy
`messaging.compliance.policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.phones import phone_mask
from tenants.services import audit_record

from ..models import ConsentDisclosure, ConsentEvent, Message, OptOutEvent, TenantKeyword, disclosure_hash
from .selectors import consent_granted_purposes, consent_latest_for_phones


@transaction.atomic
def opt_out_record(
    *,
    tenant: Tenant,
    phone: str,
    source: str,
    sender: str = "",
    keyword: str = "",
    reason: str = "",
    actor=None,
    message: Message | None = None,
    at: datetime | None = None,
) -> OptOutEvent:
    """Record that `phone` opted out of everything from `tenant`, and revoke its consents.

    Conservative by design: a STOP to any of the tenant's numbers stops all of them, and every
    purpose with a granted consent gets a `revoked` event pointing at this opt-out.
    """
    at = at or timezone.now()
    event = OptOutEvent.objects.create(
        tenant=tenant,
        phone=phone,
        action=OptOutEvent.Action.OPT_OUT,
        sender=sender,
        keyword=keyword,
        reason=reason,
        source=source,
        actor=actor,
        message=message,
        created_at=at,
    )
    method = ConsentEvent.Method.KEYWORD if source in ("keyword", "opt_out_type") else ConsentEvent.Method.API
    if source == "import":
        method = ConsentEvent.Method.IMPORT
    for purpose in consent_granted_purposes(tenant=tenant, phone=phone):
        ConsentEvent.objects.create(
            tenant=tenant,
            phone=phone,
            purpose=purpose,
            action=ConsentEvent.Action.REVOKED,
            method=method,
            source=f"opt-out ({source})",
            captured_by=actor,
            captured_at=at,
            opt_out_event=event,
            note=reason or keyword,
        )
    return event


@transaction.atomic
def opt_in_record(
    *,
    tenant: Tenant,
    phone: str,
    source: str,
    sender: str = "",
    keyword: str = "",
    reason: str = "",
    actor=None,
    message: Message | None = None,
    at: datetime | None = None,
) -> OptOutEvent:
    """Lift an opt-out. Restores nothing else: marketing needs a fresh consent event."""
    return OptOutEvent.objects.create(
        tenant=tenant,
        phone=phone,
        action=OptOutEvent.Action.OPT_IN,
        sender=sender,
        keyword=keyword,
        reason=reason,
        source=source,
        actor=actor,
        message=message,
        created_at=at or timezone.now(),
    )


def disclosure_get_or_create(*, tenant: Tenant, text: str, version: str = "", purpose: str = "") -> ConsentDisclosure:
    """The disclosure with exactly this text, stored once per tenant and referenced by hash."""
    digest = disclosure_hash(text)
    existing = ConsentDisclosure.objects.for_tenant(tenant).filter(sha256=digest).first()
    if existing:
        return existing
    return ConsentDisclosure.objects.create(tenant=tenant, text=text, sha256=digest, version=version, purpose=purpose)


@transaction.atomic
def consent_record(
    *,
    tenant: Tenant,
    phone: str,
    purpose: str,
    action: str,
    method: str,
    source: str = "",
    disclosure_text: str = "",
    disclosure_version: str = "",
    ip_address: str | None = None,
    user_agent: str = "",
    captured_by=None,
    captured_at: datetime | None = None,
    note: str = "",
) -> ConsentEvent:
    """Append one consent event. Nothing is ever updated: a correction is a new event."""
    disclosure = None
    if disclosure_text:
        disclosure = disclosure_get_or_create(
            tenant=tenant, text=disclosure_text, version=disclosure_version, purpose=purpose
        )
    return ConsentEvent.objects.create(
        tenant=tenant,
        phone=phone,
        purpose=purpose,
        action=action,
        method=method,
        source=source,
        disclosure=disclosure,
        ip_address=ip_address or None,
        user_agent=user_agent,
        captured_by=captured_by,
        captured_at=captured_at or timezone.now(),
        note=note,
    )


# --- Admin actions (portal views): each one audited -------------------------------------------


@transaction.atomic
def opt_out_admin_change(*, tenant: Tenant, phone: str, action: str, reason: str, audit: AuditContext) -> OptOutEvent:
    """An admin opts `phone` out (action 'opt_out') or back in ('opt_in'), with a reason.

    Opting back in lifts only the portal's own block: if the person had texted STOP, Twilio
    keeps refusing sends (21610) until they text START to that sender.
    """
    record = opt_out_record if action == OptOutEvent.Action.OPT_OUT else opt_in_record
    event = record(tenant=tenant, phone=phone, source=OptOutEvent.Source.ADMIN, reason=reason, actor=audit.actor)
    audit_record(
        action="opt_out.add" if action == OptOutEvent.Action.OPT_OUT else "opt_out.remove",
        tenant=tenant,
        audit=audit,
        target=phone_mask(phone),  # the ledger event it names holds the number
        reason=reason,
        details={"opt_out_event": event.pk},
    )
    return event


@dataclass(frozen=True)
class OptOutRow:
    phone: str
    at: datetime
    reason: str = ""


@transaction.atomic
def opt_out_bulk_record(*, tenant: Tenant, rows: list[OptOutRow], source: str, actor=None) -> list[OptOutEvent]:
    """`opt_out_record` for many numbers at once, with a fixed number of queries.

    Same ledger effect per row: one opt-out event, and a `revoked` consent event for every
    purpose whose latest consent is `granted`. The caller decides which rows are worth
    recording (e.g. skips numbers already opted out).
    """
    if not rows:
        return []
    events = OptOutEvent.objects.bulk_create(
        [
            OptOutEvent(
                tenant=tenant,
                phone=row.phone,
                action=OptOutEvent.Action.OPT_OUT,
                reason=row.reason,
                source=source,
                actor=actor,
                created_at=row.at,
            )
            for row in rows
        ],
        batch_size=500,
    )
    granted: dict[str, list[str]] = {}
    for (phone, purpose), latest in consent_latest_for_phones(tenant=tenant, phones=[r.phone for r in rows]).items():
        if latest.action == ConsentEvent.Action.GRANTED:
            granted.setdefault(phone, []).append(purpose)
    method = ConsentEvent.Method.IMPORT if source == OptOutEvent.Source.IMPORT else ConsentEvent.Method.API
    revocations = [
        ConsentEvent(
            tenant=tenant,
            phone=event.phone,
            purpose=purpose,
            action=ConsentEvent.Action.REVOKED,
            method=method,
            source=f"opt-out ({source})",
            captured_by=actor,
            captured_at=event.created_at,
            opt_out_event=event,
            note=event.reason,
        )
        for event in events
        for purpose in granted.get(event.phone, ())
    ]
    ConsentEvent.objects.bulk_create(revocations, batch_size=500)
    return events


@transaction.atomic
def consent_capture(
    *,
    tenant: Tenant,
    phone: str,
    purpose: str,
    action: str,
    method: str,
    audit: AuditContext,
    source: str = "",
    disclosure_text: str = "",
    disclosure_version: str = "",
    ip_address: str | None = None,
    user_agent: str = "",
    captured_at: datetime | None = None,
    note: str = "",
) -> ConsentEvent:
    """Staff record a consent they collected themselves (paper form, phone call…); audited."""
    event = consent_record(
        tenant=tenant,
        phone=phone,
        purpose=purpose,
        action=action,
        method=method,
        source=source,
        disclosure_text=disclosure_text,
        disclosure_version=disclosure_version,
        ip_address=ip_address,
        user_agent=user_agent,
        captured_by=audit.actor,
        captured_at=captured_at,
        note=note,
    )
    audit_record(
        action="consent.capture",
        tenant=tenant,
        audit=audit,
        target=phone_mask(phone),  # the ledger event it names holds the number
        details={"consent_event": event.pk, "purpose": purpose, "action": action, "method": method},
    )
    return event


@transaction.atomic
def tenant_keyword_add(*, tenant: Tenant, kind: str, word: str, audit: AuditContext) -> TenantKeyword:
    """Add a tenant keyword; `word` must already be normalised and free (see the form)."""
    keyword = TenantKeyword.objects.create(tenant=tenant, kind=kind, word=word)
    audit_record(action="keyword.add", tenant=tenant, audit=audit, target=word, details={"kind": kind})
    return keyword


@transaction.atomic
def tenant_keyword_remove(*, tenant: Tenant, keyword: TenantKeyword, audit: AuditContext) -> None:
    audit_record(
        action="keyword.remove", tenant=tenant, audit=audit, target=keyword.word, details={"kind": keyword.kind}
    )
    TenantKeyword.objects.for_tenant(tenant).filter(pk=keyword.pk).delete()
