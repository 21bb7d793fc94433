"""The revocation review queue: a free-text "please stop" opens a review that an admin confirms
(an opt-out) or dismisses, within the 10 business days the FCC allows."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.phones import phone_mask
from tenants.services import audit_record

from ..compliance.business_days import add_business_days, country_for_phone
from ..models import Message, OptOutEvent, RevocationReview
from .reachability import number_is_opted_out
from .services import opt_out_record

__all__ = [
    "REVOCATION_BUSINESS_DAYS",
    "revocation_confirm",
    "revocation_dismiss",
    "revocation_open",
    "revocation_open_list",
]


#: FCC 24-24: a revocation must be honoured within 10 business days.
REVOCATION_BUSINESS_DAYS = 10


def revocation_open(*, tenant: Tenant, message: Message) -> RevocationReview | None:
    """Queue a free-text revocation for an admin, due in 10 business days.

    The deadline counts business days of the sender's country, starting from the day the
    message arrived in the tenant's time zone (a text at 23:30 on a Wednesday in New York is
    a Wednesday request, though it is Thursday in UTC). A number that is already opted out
    has nothing left to revoke: no review, nothing to miss.
    """
    phone = message.from_number
    if number_is_opted_out(tenant=tenant, phone=phone):
        return None
    received_at = timezone.localtime(message.created_at, ZoneInfo(tenant.timezone))
    deadline = add_business_days(received_at, REVOCATION_BUSINESS_DAYS, country=country_for_phone(phone))
    return RevocationReview.objects.create(
        tenant=tenant,
        message=message,
        phone=phone,
        received_at=message.created_at,
        deadline_at=deadline,
        status=RevocationReview.Status.OPEN,
    )


# --- Revocation review queue ----------------------------------------------------------------------


def revocation_open_list(*, tenant: Tenant) -> QuerySet[RevocationReview]:
    """The tenant's undecided revocations, most urgent (earliest deadline) first."""
    return (
        RevocationReview.objects.for_tenant(tenant)
        .filter(status=RevocationReview.Status.OPEN)
        .select_related("message")
        .order_by("deadline_at", "id")
    )


def _review_lock(*, tenant: Tenant, review: RevocationReview) -> RevocationReview:
    """The review, row-locked, if it is this tenant's and still open; ValueError otherwise."""
    locked = RevocationReview.objects.for_tenant(tenant).select_for_update().filter(pk=review.pk).first()
    if locked is None:
        raise ValueError("No such revocation review for this tenant.")
    if locked.status != RevocationReview.Status.OPEN:
        raise ValueError(f"This revocation review was already {locked.get_status_display().lower()}.")
    return locked


def _review_copy(source: RevocationReview, target: RevocationReview) -> None:
    for name in ("status", "decided_by_id", "decided_at", "decision_note", "opt_out_event_id"):
        setattr(target, name, getattr(source, name))


@transaction.atomic
def revocation_confirm(*, tenant: Tenant, review: RevocationReview, audit: AuditContext, note: str = "") -> OptOutEvent:
    """An admin confirms a free-text revocation: the number is opted out (source
    `revocation_review`, every granted consent revoked) and the message becomes evidence.

    The opt-out is dated now, when the portal honours it; the review keeps when it arrived.
    Raises ValueError when the review is another tenant's or no longer open (two admins
    deciding at once: the row lock makes the second one fail).
    """
    locked = _review_lock(tenant=tenant, review=review)
    message = locked.message
    note = (note or "").strip()
    event = opt_out_record(
        tenant=tenant,
        phone=locked.phone,
        source=OptOutEvent.Source.REVOCATION_REVIEW,
        sender=message.messaging_service_sid or message.to_number,
        reason="Free-text revocation confirmed in review" + (f": {note}" if note else ""),
        actor=audit.actor,
        message=message,
    )
    Message.objects.for_tenant(tenant).filter(pk=message.pk).update(is_evidence=True)
    locked.status = RevocationReview.Status.CONFIRMED
    locked.decided_by = audit.actor
    locked.decided_at = event.created_at
    locked.decision_note = note
    locked.opt_out_event = event
    locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note", "opt_out_event"])
    _review_copy(locked, review)
    audit_record(
        action="revocation.confirm",
        tenant=tenant,
        audit=audit,
        target=f"revocation review #{locked.pk} ({phone_mask(locked.phone)})",
        reason=note,
        details={"review": locked.pk, "opt_out_event": event.pk, "message_sid": message.sid or ""},
    )
    return event


@transaction.atomic
def revocation_dismiss(*, tenant: Tenant, review: RevocationReview, audit: AuditContext, note: str) -> RevocationReview:
    """An admin decides a flagged message was not a revocation ("stop by at 5" was literal).

    The note is required: a dismissal keeps a number reachable, so the reason must be on
    record. Raises ValueError for an empty note, another tenant's review or a decided one.
    """
    note = (note or "").strip()
    if not note:
        raise ValueError("Say why this message is not a revocation.")
    locked = _review_lock(tenant=tenant, review=review)
    locked.status = RevocationReview.Status.DISMISSED
    locked.decided_by = audit.actor
    locked.decided_at = timezone.now()
    locked.decision_note = note
    locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    _review_copy(locked, review)
    audit_record(
        action="revocation.dismiss",
        tenant=tenant,
        audit=audit,
        target=f"revocation review #{locked.pk} ({phone_mask(locked.phone)})",
        reason=note,
        details={"review": locked.pk, "message_sid": locked.message.sid or ""},
    )
    return locked
