"""Shared fixtures and helpers for the gate and delivery tests.

Twilio is replaced only at the client factory's edge: `TWILIO_API_BASE_URL` points the real SDK
at the local sandbox (tests/conftest.py's `sandbox` / `sandbox_settings`), which answers over
HTTP like Twilio does. The fixtures (`celery_eager`, `twilio_tenant`) are in conftest.py.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import requests
from django.utils import timezone

from messaging.ledgers.services import consent_record
from messaging.models import ConsentEvent, Message, Purpose
from sandbox.state import MAGIC_FROM, Fault

SENDER = MAGIC_FROM  # the sandbox's always-accepted From number
NY = "+12125550123"  # America/New_York
NY_2 = "+12125550145"
FL = "+13055550123"  # Miami, America/New_York, Florida's 8:00-20:00 window
OK = "+14055550123"  # Oklahoma City, America/Chicago
SF = "+14155550123"  # San Francisco, America/Los_Angeles
IDAHO = "+12083201234"  # America/Boise or America/Los_Angeles: two candidate zones
INVALID_TO = "+15005550001"  # sandbox: 21211
OPTED_OUT_AT_TWILIO = "+15005550004"  # sandbox: 21610


def sandbox_messages(sandbox, to: str) -> list[dict]:
    """Every message the sandbox holds for `to` (outbound from our side), newest first."""
    response = requests.get(f"{sandbox.base_url}/sandbox/messages", params={"to": to}, timeout=5)
    response.raise_for_status()
    return response.json()


def add_fault(sandbox, **fields) -> None:
    """Make the next matching Twilio API request(s) fail (sandbox.state.Fault)."""
    sandbox.add_fault(Fault(**fields))


def grant_marketing(tenant, phone: str, *, at: datetime | None = None) -> ConsentEvent:
    return consent_record(
        tenant=tenant,
        phone=phone,
        purpose=Purpose.MARKETING,
        action=ConsentEvent.Action.GRANTED,
        method=ConsentEvent.Method.WEB_FORM,
        source="https://acme.example/signup",
        disclosure_text="Acme offers, up to 4 msgs/month. Msg & data rates may apply. Reply STOP to cancel.",
        captured_at=at or timezone.now() - timedelta(days=30),
    )


def sent_marketing(tenant, phone: str, *, accepted_at: datetime, purpose: str = Purpose.MARKETING) -> Message:
    """A marketing message Twilio accepted at `accepted_at` (counts against the cap)."""
    return Message.objects.create(
        tenant=tenant,
        direction=Message.Direction.OUTBOUND,
        sid="SM" + secrets.token_hex(16),
        from_number=SENDER,
        to_number=phone,
        body="Sale!",
        purpose=purpose,
        status="delivered",
        gate_decision="send",
        accepted_at=accepted_at,
    )


def reload(message: Message) -> Message:
    return Message.all_tenants.get(pk=message.pk)
