"""The message log: a tenant's messages, newest first, and one message with its events."""

from __future__ import annotations

from django.db.models import QuerySet

from tenants.models import Tenant
from tenants.scoping import get_scoped_or_404

from .models import Message, MessageEvent


def message_list(*, tenant: Tenant) -> QuerySet[Message]:
    """The tenant's message log, newest first; the view's filters and keyset paging narrow it."""
    return Message.objects.for_tenant(tenant).order_by("-created_at", "-id")


def message_detail(*, tenant: Tenant, message_id: int) -> tuple[Message, list[MessageEvent]]:
    """One message of `tenant` (404 for anyone else's) and its status timeline, oldest first."""
    message = get_scoped_or_404(Message, tenant=tenant, pk=message_id)
    events = list(MessageEvent.objects.for_tenant(tenant).filter(message=message).order_by("occurred_at", "id"))
    return message, events


def bulk_recipient_list(*, tenant: Tenant, bulk) -> QuerySet[Message]:
    """A bulk send's messages, one per recipient, newest first (the order keyset paging walks)."""
    return Message.objects.for_tenant(tenant).filter(bulk_send=bulk).order_by("-created_at", "-id")
