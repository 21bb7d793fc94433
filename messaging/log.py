"""The message log: a tenant's messages, newest first, one message with its events, and the
numbers its messages went through."""

from __future__ import annotations

from django.db.models import QuerySet

from tenants.models import PhoneNumber, Tenant
from tenants.scoping import get_scoped_or_404

from .models import BulkSend, Message, MessageEvent, RevocationReview


def message_list(*, tenant: Tenant) -> QuerySet[Message]:
    """The tenant's message log, newest first; the view's filters and keyset paging narrow it."""
    return Message.objects.for_tenant(tenant).order_by("-created_at", "-id")


#: The columns a log page row shows (`{% message_rows %}`): loading the other twenty-odd
#: (timestamps parsed, the media JSON decoded) for 50 rows was a tenth of the page.
LOG_ROW_FIELDS = (
    "id", "direction", "keyword", "from_number", "to_number", "body", "body_purged_at", "num_media",
    "status", "error_code", "created_at", "accepted_at",
)  # fmt: skip


def message_log_rows(messages: QuerySet[Message]) -> QuerySet[Message]:
    """`messages` loading only what the log's rows show."""
    return messages.only(*LOG_ROW_FIELDS)


def bulk_send_choices(*, tenant: Tenant) -> QuerySet[BulkSend]:
    """The tenant's bulk sends, newest first: the log's "Bulk send" filter choices."""
    return BulkSend.objects.for_tenant(tenant).order_by("-created_at", "-id")


def message_detail(*, tenant: Tenant, message_id: int) -> tuple[Message, list[MessageEvent]]:
    """One message of `tenant` (404 for anyone else's) and its status timeline, oldest first."""
    message = get_scoped_or_404(Message, tenant=tenant, pk=message_id)
    events = list(MessageEvent.objects.for_tenant(tenant).filter(message=message).order_by("occurred_at", "id"))
    return message, events


def bulk_recipient_list(*, tenant: Tenant, bulk) -> QuerySet[Message]:
    """A bulk send's messages, one per recipient, newest first (the order keyset paging walks)."""
    return Message.objects.for_tenant(tenant).filter(bulk_send=bulk).order_by("-created_at", "-id")


def message_review_get(*, tenant: Tenant, message: Message) -> RevocationReview | None:
    """The revocation review this message raised, if any: shown beside it so the admin can decide."""
    return RevocationReview.objects.for_tenant(tenant).filter(message=message).first()


def sender_numbers_list(*, tenant: Tenant) -> list[tuple[str, str]]:
    """The numbers a message may be sent from: the tenant's SMS-capable numbers still held (the
    synced inventory), as (E.164, friendly name), in number order."""
    return list(
        PhoneNumber.objects.for_tenant(tenant)
        .filter(sms=True, released_at__isnull=True)
        .order_by("phone_number")
        .values_list("phone_number", "friendly_name")
    )
