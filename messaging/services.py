"""Writes for messaging: the opt-out and consent ledgers (append-only).

Inbound/status webhook processing and the revocation review queue live in
`messaging/inbound.py`; sending (gate, delivery) arrives with the sending issue.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from tenants.models import Tenant

from .models import ConsentDisclosure, ConsentEvent, Message, OptOutEvent, disclosure_hash
from .selectors import consent_granted_purposes


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
