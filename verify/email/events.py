"""SendGrid's Event Webhook batches: stored once per `sg_event_id`, each under the tenant its
`tenant` custom arg names (one batch may mix tenants), and turned into the tenant's suppression
list and its emails' statuses.

- bounce (not a temporary `blocked` one), dropped, spamreport, unsubscribe: the address is
  suppressed for all the tenant's email;
- group_unsubscribe: suppressed for that ASM group only; group_resubscribe lifts that entry;
- processed, deferred, delivered, bounce, dropped move the email's status forward (never back:
  the first final status wins); open, click and the rest are only logged.

An event whose tenant is unknown (or missing) is skipped and counted, never a failure: SendGrid
would retry the whole batch forever. A replayed batch stores and changes nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.models import Tenant

from ..models import EmailEvent, EmailMessage, EmailSuppression
from .suppressions import suppression_add, suppression_lift_group

logger = logging.getLogger("commsportal.email")

Status = EmailMessage.Status
SUPPRESSING = {
    "bounce": EmailSuppression.Reason.BOUNCE,
    "dropped": EmailSuppression.Reason.DROPPED,
    "spamreport": EmailSuppression.Reason.SPAMREPORT,
    "unsubscribe": EmailSuppression.Reason.UNSUBSCRIBE,
}
#: The email status an event means, and how far along it is (final ones share the top rank).
EVENT_STATUS = {
    "processed": Status.PROCESSED,
    "deferred": Status.DEFERRED,
    "delivered": Status.DELIVERED,
    "bounce": Status.BOUNCED,
    "dropped": Status.DROPPED,
}
STATUS_RANK = {
    Status.QUEUED: 0,
    Status.SENDING: 0,
    Status.SENT: 1,
    Status.PROCESSED: 2,
    Status.DEFERRED: 3,
    Status.DELIVERED: 4,
    Status.BOUNCED: 4,
    Status.DROPPED: 4,
}


def _int_or_none(value: Any) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None


def _occurred_at(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return timezone.now()


def _without_nul(value: Any) -> Any:
    """`value` without NUL characters, which PostgreSQL text and jsonb refuse."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


def events_record(*, events: list) -> dict[str, int]:
    """Store a verified batch and apply it; returns counts: stored, duplicate, unknown_tenant,
    invalid (not an event object or no sg_event_id). One transaction: all or nothing."""
    counts: Counter[str] = Counter(stored=0, duplicate=0, unknown_tenant=0, invalid=0)
    events = _without_nul(events)
    valid = [e for e in events if isinstance(e, dict) and isinstance(e.get("sg_event_id"), str) and e["sg_event_id"]]
    counts["invalid"] = len(events) - len(valid)
    tenant_ids = {_int_or_none(e.get("tenant")) for e in valid} - {None}
    tenants = {t.pk: t for t in Tenant.objects.filter(pk__in=tenant_ids)}
    with transaction.atomic():
        seen = set(
            EmailEvent.all_tenants.filter(sg_event_id__in=[e["sg_event_id"][:100] for e in valid]).values_list(
                "sg_event_id", flat=True
            )
        )
        for data in valid:
            tenant = tenants.get(_int_or_none(data.get("tenant")))
            if tenant is None:
                counts["unknown_tenant"] += 1
                continue
            event_id = data["sg_event_id"][:100]
            if event_id in seen:
                counts["duplicate"] += 1
                continue
            seen.add(event_id)
            if _event_store(tenant=tenant, data=data) is None:
                counts["duplicate"] += 1
            else:
                counts["stored"] += 1
    if counts["unknown_tenant"] or counts["invalid"]:
        logger.warning("sendgrid.webhook.skipped", extra=dict(counts))
    return dict(counts)


def _event_store(*, tenant: Tenant, data: dict) -> EmailEvent | None:
    """Store one event and apply it; None when a concurrent batch stored it first."""
    kind = str(data.get("event") or "")[:24]
    email_id = _int_or_none(data.get("email_id"))
    message = EmailMessage.objects.for_tenant(tenant).filter(pk=email_id).first() if email_id else None
    try:
        with transaction.atomic():
            event = EmailEvent.objects.create(
                tenant=tenant,
                sg_event_id=data["sg_event_id"][:100],
                event=kind,
                email=str(data.get("email") or "")[:254],
                occurred_at=_occurred_at(data.get("timestamp")),
                message=message,
                sg_message_id=str(data.get("sg_message_id") or "")[:100],
                asm_group_id=_int_or_none(data.get("asm_group_id")),
                reason=str(data.get("reason") or data.get("response") or "")[:2000],
                payload=data,
            )
    except IntegrityError:
        return None
    _event_apply(tenant=tenant, event=event, data=data)
    return event


def _event_apply(*, tenant: Tenant, event: EmailEvent, data: dict) -> None:
    """The event's effect on the suppression list and its email's status."""
    reason = SUPPRESSING.get(event.event)
    temporary = event.event == "bounce" and data.get("type") == "blocked"
    try:
        if reason and not temporary:
            suppression_add(tenant=tenant, email=event.email, reason=reason, detail=event.reason, source_event=event)
        elif event.event == "group_unsubscribe" and event.asm_group_id:
            suppression_add(
                tenant=tenant,
                email=event.email,
                reason=EmailSuppression.Reason.GROUP_UNSUBSCRIBE,
                asm_group_id=event.asm_group_id,
                source_event=event,
            )
        elif event.event == "group_resubscribe" and event.asm_group_id:
            suppression_lift_group(tenant=tenant, email=event.email, asm_group_id=event.asm_group_id)
    except ValidationError:
        logger.warning("sendgrid.webhook.bad_address", extra={"tenant": tenant.slug, "event": event.event})
    status = EVENT_STATUS.get(event.event)
    if status and event.message_id:
        lower = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
        if event.event == "deferred":
            lower.append(Status.DEFERRED)  # a repeated deferral is still deferred
        EmailMessage.objects.for_tenant(tenant).filter(pk=event.message_id, status__in=lower).update(
            status=status, updated_at=timezone.now()
        )
