"""The message log: a tenant's messages, newest first, one message with its events, and the
numbers its messages went through."""

from __future__ import annotations

from django.db.models import QuerySet

from tenants.models import PhoneNumber, Tenant
from tenants.scoping import get_scoped_or_404

from .models import Message, MessageEvent, RevocationReview


def message_list(*, tenant: Tenant) -> QuerySet[Message]:
    """The tenant's message log, newest first; the view's filters and keyset paging narrow it."""
    return Message.objects.for_tenant(tenant).order_by("-created_at", "-id")


def message_detail(*, tenant: Tenant, message_id: int) -> tuple[Message, list[MessageEvent]]:
    """One message of `tenant` (404 for anyone else's) and its status timeline, oldest first."""
    message = get_scoped_or_404(Message, tenant=tenant, pk=message_id)
    events = list(MessageEvent.objects.for_tenant(tenant).filter(message=message).order_by("occurred_at", "id"))
    return message, events


def message_review_get(*, tenant: Tenant, message: Message) -> RevocationReview | None:
    """The revocation review this message raised, if any: shown beside it so the admin can decide."""
    return RevocationReview.objects.for_tenant(tenant).filter(message=message).first()


def sender_numbers_list(*, tenant: Tenant) -> list[str]:
    """Numbers this tenant receives on or has sent from, and the numbers it holds: suggestions
    for a send form's From field (a few recent ones from the log, every held number)."""
    inbound = Message.objects.for_tenant(tenant).filter(direction="inbound").values_list("to_number", flat=True)
    outbound = Message.objects.for_tenant(tenant).filter(direction="outbound").values_list("from_number", flat=True)
    found = {n for n in list(inbound.distinct()[:20]) + list(outbound.distinct()[:20]) if n and n.startswith("+")}
    found |= set(
        PhoneNumber.objects.for_tenant(tenant).filter(released_at__isnull=True).values_list("phone_number", flat=True)
    )
    return sorted(found)
