"""The tenant's email suppression list: who must not be emailed, for all email or for one
SendGrid unsubscribe (ASM) group. Every send checks it (`suppression_find`); SendGrid's bounce,
dropped, spamreport and unsubscribe events add to it, group_unsubscribe adds a group entry and
group_resubscribe lifts it (`verify.email.events`); admins add and remove entries by hand."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q

from tenants.audit import AuditContext
from tenants.emails import email_mask
from tenants.models import Tenant
from tenants.services import audit_record

from ..models import EmailEvent, EmailSuppression


def email_normalize(raw: str) -> str:
    """The address as the suppression list keys it (trimmed, lower-cased); ValidationError
    when it is not an email address."""
    value = (raw or "").strip().lower()
    validate_email(value)
    return value


def suppression_find(*, tenant: Tenant, email: str, asm_group_id: int | None = None) -> EmailSuppression | None:
    """The entry that forbids emailing `email` (in `asm_group_id`, when the email belongs to
    a group), or None when it may be sent. A global entry blocks every group."""
    scope = Q(asm_group_id__isnull=True)
    if asm_group_id is not None:
        scope |= Q(asm_group_id=asm_group_id)
    return (
        EmailSuppression.objects.for_tenant(tenant)
        .filter(scope, email=(email or "").strip().lower())
        .order_by("asm_group_id", "id")
        .first()
    )


def suppression_add(
    *,
    tenant: Tenant,
    email: str,
    reason: str,
    asm_group_id: int | None = None,
    detail: str = "",
    source_event: EmailEvent | None = None,
    audit: AuditContext | None = None,
) -> tuple[EmailSuppression, bool]:
    """Suppress `email` for the tenant (all email, or one group); (entry, created). An address
    already on the list keeps its first entry. Audited when `audit` is given (an admin's
    entry); SendGrid's events are recorded in the email event log instead."""
    address = email_normalize(email)
    if reason not in EmailSuppression.Reason.values:
        raise ValidationError(f"Unknown suppression reason {reason!r}.")
    lookup = {"asm_group_id__isnull": True} if asm_group_id is None else {"asm_group_id": asm_group_id}
    existing = EmailSuppression.objects.for_tenant(tenant).filter(email=address, **lookup).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            entry = EmailSuppression.objects.create(
                tenant=tenant,
                email=address,
                asm_group_id=asm_group_id,
                reason=reason,
                detail=detail[:1000],
                source_event=source_event,
                created_by=audit.actor if audit else None,
            )
            if audit is not None:
                audit_record(
                    action="email.suppression_add",
                    tenant=tenant,
                    audit=audit,
                    target=email_mask(address),
                    reason=detail,
                    details={"asm_group_id": asm_group_id, "reason": reason},
                )
    except IntegrityError:  # a concurrent event added it first
        return EmailSuppression.objects.for_tenant(tenant).get(email=address, **lookup), False
    return entry, True


def suppression_remove(*, tenant: Tenant, entry_id: int, audit: AuditContext, reason: str = "") -> EmailSuppression:
    """An admin lifts one entry (audited, with what it was); DoesNotExist for another tenant's."""
    with transaction.atomic():
        entry = EmailSuppression.objects.for_tenant(tenant).select_for_update().get(pk=entry_id)
        audit_record(
            action="email.suppression_remove",
            tenant=tenant,
            audit=audit,
            target=email_mask(entry.email),
            reason=reason,
            details={
                "asm_group_id": entry.asm_group_id,
                "reason": entry.reason,
                "created_at": entry.created_at.isoformat(),
            },
        )
        EmailSuppression.objects.for_tenant(tenant).filter(pk=entry.pk).delete()
    return entry


def suppression_lift_group(*, tenant: Tenant, email: str, asm_group_id: int) -> int:
    """group_resubscribe: lift the group's entry for `email` (never a global one)."""
    deleted, _ = (
        EmailSuppression.objects.for_tenant(tenant)
        .filter(email=(email or "").strip().lower(), asm_group_id=asm_group_id)
        .delete()
    )
    return deleted
