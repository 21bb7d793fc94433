"""A signed webhook carrying NUL is stored, not refused: PostgreSQL text and JSON columns reject
NUL, so every field keeps U+FFFD in its place, and a "STOP\\x00" still opts the customer out.
Meant for PostgreSQL (DATABASE_URL=postgres://…); SQLite accepts NUL, so there it only checks
the replacement and the keyword."""

import pytest

from messaging.ledgers.reachability import number_is_opted_out
from messaging.models import Message, MessageEvent
from tests.conftest import random_sid

INBOUND = "/webhooks/twilio/messaging/inbound/"
STATUS = "/webhooks/twilio/messaging/status/"
CUSTOMER = "+14155550100"
OUR_NUMBER = "+14155550199"

pytestmark = pytest.mark.django_db


def test_inbound_stop_with_nul_is_stored_and_applied(twilio_webhook, tenant):
    sid = random_sid("SM")
    params = {
        "AccountSid": tenant.account_sid,
        "MessageSid": sid,
        "From": CUSTOMER,
        "To": OUR_NUMBER,
        "Body": "STOP\x00",
        "NumMedia": "0",
        "FromCity": "SAN\x00FRANCISCO",
        "Odd\x00Field": "x",
    }

    response = twilio_webhook.post(INBOUND, params, token=tenant.auth_token.reveal())

    assert response.status_code == 200, response.content
    message = Message.objects.for_tenant(tenant).get(sid=sid)
    assert message.body == "STOP\ufffd"
    assert message.keyword == "opt_out"
    assert number_is_opted_out(tenant=tenant, phone=CUSTOMER)
    payload = MessageEvent.objects.for_tenant(tenant).get(message=message).payload
    assert payload["FromCity"] == "SAN\ufffdFRANCISCO" and payload["Odd\ufffdField"] == "x"
    assert "\x00" not in str(payload)


def test_status_callback_with_nul_is_stored(twilio_webhook, tenant):
    sid = random_sid("SM")
    params = {
        "AccountSid": tenant.account_sid,
        "MessageSid": sid,
        "MessageStatus": "delivered",
        "From": OUR_NUMBER,
        "To": CUSTOMER,
        "ChannelStatusMessage": "ok\x00",
    }

    response = twilio_webhook.post(STATUS, params, token=tenant.auth_token.reveal())

    assert response.status_code == 204, response.content
    message = Message.objects.for_tenant(tenant).get(sid=sid)
    event = MessageEvent.objects.for_tenant(tenant).get(message=message)
    assert event.payload["ChannelStatusMessage"] == "ok\ufffd"
