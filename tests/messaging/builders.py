"""Rows for the messaging view tests: messages, ledger events and reviews at chosen times."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from messaging.ledgers.services import consent_record
from messaging.models import ConsentEvent, Message, MessageEvent, OptOutEvent, RevocationReview
from tests.conftest import random_sid

CUSTOMER = "+14155550100"
OTHER_CUSTOMER = "+14155550111"
OUR_NUMBER = "+14155550199"
SERVICE = "MG" + "b" * 32


def ago(**kwargs) -> datetime:
    return timezone.now() - timedelta(**kwargs)


def make_message(
    tenant,
    *,
    direction: str = "outbound",
    customer: str = CUSTOMER,
    ours: str = OUR_NUMBER,
    status: str = "delivered",
    at: datetime | None = None,
    **fields,
) -> Message:
    inbound = direction == "inbound"
    message = Message.objects.create(
        tenant=tenant,
        direction=direction,
        sid=fields.pop("sid", random_sid("SM")),
        from_number=customer if inbound else ours,
        to_number=ours if inbound else customer,
        status=status,
        body=fields.pop("body", "Hello from Acme"),
        **fields,
    )
    if at is not None:
        Message.objects.for_tenant(tenant).filter(pk=message.pk).update(created_at=at)
        message.created_at = at
    return message


def make_event(message, status: str, *, at: datetime | None = None, error_code: int | None = None) -> MessageEvent:
    return MessageEvent.objects.create(
        tenant=message.tenant,
        message=message,
        status=status,
        error_code=error_code,
        occurred_at=at or timezone.now(),
        payload={"MessageStatus": status, "To": message.to_number},
    )


def make_opt_out(tenant, phone: str = CUSTOMER, *, action: str = "opt_out", source: str = "keyword", at=None, **kw):
    return OptOutEvent.objects.create(
        tenant=tenant,
        phone=phone,
        action=action,
        source=source,
        created_at=at or timezone.now(),
        **kw,
    )


def make_consent(
    tenant, phone: str = CUSTOMER, *, purpose="marketing", action="granted", at=None, **kw
) -> ConsentEvent:
    kw.setdefault("method", "web_form")
    kw.setdefault("disclosure_text", "Acme marketing: up to 4 msgs/month. Reply STOP to cancel.")
    kw.setdefault("disclosure_version", "v1")
    return consent_record(tenant=tenant, phone=phone, purpose=purpose, action=action, captured_at=at, **kw)


def make_review(tenant, phone: str = CUSTOMER, *, body="please stop texting me", received=None, deadline=None):
    received = received or ago(days=1)
    message = make_message(tenant, direction="inbound", customer=phone, status="received", body=body, at=received)
    return RevocationReview.objects.create(
        tenant=tenant,
        message=message,
        phone=phone,
        received_at=received,
        deadline_at=deadline or received + timedelta(days=14),
    )
