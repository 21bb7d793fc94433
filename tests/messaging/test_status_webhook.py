"""Delivery status callbacks: idempotent per (MessageSid, MessageStatus), a status that never
moves backwards, error codes, 21610 opt-outs, `?m=` re-attachment and tenant isolation."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from messaging.intake.status import ERROR_21610_REASON, status_callback_apply
from messaging.ledgers.reachability import number_is_opted_out
from messaging.ledgers.services import opt_in_record, opt_out_record
from messaging.models import Message, MessageEvent, OptOutEvent
from tenants.twilio_errors import explain
from tests.conftest import random_sid
from tests.tenants.factories import TenantFactory

STATUS = "/webhooks/twilio/messaging/status/"
CUSTOMER = "+14155550100"
OUR_NUMBER = "+14155550199"
SERVICE = "MG" + "b" * 32

pytestmark = pytest.mark.django_db


def post_status(twilio_webhook, tenant, sid, status, *, query="", token=None, **extra):
    params = {
        "AccountSid": tenant.account_sid,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "From": OUR_NUMBER,
        "To": CUSTOMER,
        **extra,
    }
    return twilio_webhook.post(STATUS + query, params, token=token or tenant.auth_token.reveal())


def outbound(tenant, *, sid=None, status="pending", **fields):
    defaults = {"from_number": OUR_NUMBER, "to_number": CUSTOMER, "body": "Your code is 123456"}
    defaults.update(fields)
    return Message.objects.create(tenant=tenant, direction="outbound", sid=sid, status=status, **defaults)


def events(tenant, message):
    return list(MessageEvent.objects.for_tenant(tenant).filter(message=message).values_list("status", flat=True))


def reload(message):
    return Message.all_tenants.get(pk=message.pk)


# --- order and idempotency ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sequence,final",
    [
        (["queued", "sent", "delivered"], "delivered"),
        (["delivered", "sent"], "delivered"),
        (["sent", "queued", "accepted"], "sent"),
        (["failed", "delivered"], "failed"),  # the first final status wins
        (["undelivered", "failed"], "undelivered"),
        (["delivered", "read"], "read"),
        (["read", "delivered"], "read"),  # WhatsApp may report read first
        (["undelivered", "read"], "undelivered"),  # an undelivered message was never read
        (["sending", "partially_delivered", "sent"], "partially_delivered"),
    ],
)
def test_stored_status_never_moves_backwards(twilio_webhook, tenant, sequence, final):
    message = outbound(tenant, sid=random_sid("SM"), status="accepted")
    for status in sequence:
        assert post_status(twilio_webhook, tenant, message.sid, status).status_code == 204
    message = reload(message)
    assert message.status == final
    assert sorted(events(tenant, message)) == sorted(set(sequence))  # every distinct status kept


def test_duplicate_callbacks_make_one_event(twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="accepted")
    for _ in range(3):
        assert post_status(twilio_webhook, tenant, message.sid, "delivered").status_code == 204
    assert events(tenant, message) == ["delivered"]
    assert reload(message).status == "delivered"


def test_event_keeps_its_time_and_payload(twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="accepted")
    post_status(twilio_webhook, tenant, message.sid, "delivered", RawDlrDoneDate="2611271830")
    event = MessageEvent.objects.for_tenant(tenant).get(message=message)
    assert event.occurred_at is not None
    assert event.payload["RawDlrDoneDate"] == "2611271830"
    message = reload(message)
    assert message.status_updated_at == event.occurred_at


def test_repeat_of_an_older_status_does_not_touch_the_row(twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="accepted")
    post_status(twilio_webhook, tenant, message.sid, "delivered")
    stamped = reload(message).status_updated_at
    post_status(twilio_webhook, tenant, message.sid, "sent")
    assert reload(message).status_updated_at == stamped


# --- unknown messages and ?m= ------------------------------------------------------------------------


def test_callback_for_a_message_the_portal_never_sent_creates_its_row(twilio_webhook, tenant):
    sid = random_sid("SM")
    response = post_status(twilio_webhook, tenant, sid, "sent", MessagingServiceSid=SERVICE)
    assert response.status_code == 204
    message = Message.objects.for_tenant(tenant).get(sid=sid)
    assert message.direction == "outbound"
    assert message.from_number == OUR_NUMBER and message.to_number == CUSTOMER
    assert message.messaging_service_sid == SERVICE
    assert message.status == "sent"
    assert events(tenant, message) == ["sent"]
    post_status(twilio_webhook, tenant, sid, "delivered")
    assert reload(message).status == "delivered"
    assert Message.objects.for_tenant(tenant).count() == 1


def test_status_callback_reattaches_the_sid_to_the_portals_message(twilio_webhook, tenant):
    message = outbound(tenant, from_number="")  # sent through a Messaging Service: no From yet
    sid = random_sid("SM")
    response = post_status(twilio_webhook, tenant, sid, "queued", query=f"?m={message.pk}", MessagingServiceSid=SERVICE)
    assert response.status_code == 204
    message = reload(message)
    assert message.sid == sid
    assert message.status == "queued"
    assert message.from_number == OUR_NUMBER and message.messaging_service_sid == SERVICE
    assert message.accepted_at is not None
    assert Message.objects.for_tenant(tenant).count() == 1
    # Later callbacks find it by SID, with or without ?m=.
    post_status(twilio_webhook, tenant, sid, "delivered", query=f"?m={message.pk}")
    post_status(twilio_webhook, tenant, sid, "read")
    assert reload(message).status == "read"
    assert Message.objects.for_tenant(tenant).count() == 1


def test_m_never_repoints_a_message_that_already_has_a_sid(twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="sent")
    other_sid = random_sid("SM")
    post_status(twilio_webhook, tenant, other_sid, "delivered", query=f"?m={message.pk}")
    assert reload(message).sid == message.sid and reload(message).status == "sent"
    assert Message.objects.for_tenant(tenant).get(sid=other_sid).pk != message.pk


def test_m_naming_another_tenants_message_is_ignored(twilio_webhook, tenant, other_tenant):
    theirs = outbound(other_tenant)
    sid = random_sid("SM")
    post_status(twilio_webhook, tenant, sid, "sent", query=f"?m={theirs.pk}")
    assert reload(theirs).sid is None and reload(theirs).status == "pending"
    assert Message.objects.for_tenant(tenant).get(sid=sid).pk != theirs.pk


@pytest.mark.parametrize("m", ["abc", "-1", "", "999999999"])
def test_unusable_m_is_ignored(twilio_webhook, tenant, m):
    sid = random_sid("SM")
    assert post_status(twilio_webhook, tenant, sid, "sent", query=f"?m={m}").status_code == 204
    assert Message.objects.for_tenant(tenant).get(sid=sid).direction == "outbound"


def test_m_does_not_attach_to_an_inbound_message(twilio_webhook, tenant):
    received = Message.objects.create(
        tenant=tenant, direction="inbound", from_number=CUSTOMER, to_number=OUR_NUMBER, status="received"
    )
    sid = random_sid("SM")
    post_status(twilio_webhook, tenant, sid, "sent", query=f"?m={received.pk}")
    assert reload(received).sid is None


# --- error codes and 21610 ---------------------------------------------------------------------------


def test_error_code_stored_with_an_explanation(twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="sent")
    post_status(twilio_webhook, tenant, message.sid, "undelivered", ErrorCode="30003")
    message = reload(message)
    assert message.status == "undelivered"
    assert message.error_code == 30003
    assert MessageEvent.objects.for_tenant(tenant).get(message=message).error_code == 30003
    assert "unreachable" in explain(message.error_code)


def test_error_code_of_an_ignored_status_stays_on_its_event(twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="sent")
    post_status(twilio_webhook, tenant, message.sid, "delivered")
    post_status(twilio_webhook, tenant, message.sid, "failed", ErrorCode="30008")
    message = reload(message)
    assert message.status == "delivered" and message.error_code is None
    assert MessageEvent.objects.for_tenant(tenant).get(message=message, status="failed").error_code == 30008


def test_unparseable_error_code_is_not_stored(twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="sent")
    post_status(twilio_webhook, tenant, message.sid, "failed", ErrorCode="oops")
    assert reload(message).error_code is None


def test_error_21610_records_an_opt_out_once(twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="accepted")
    post_status(twilio_webhook, tenant, message.sid, "failed", ErrorCode="21610")
    post_status(twilio_webhook, tenant, message.sid, "failed", ErrorCode="21610")  # duplicate
    post_status(twilio_webhook, tenant, message.sid, "undelivered", ErrorCode="21610")  # another final
    second = outbound(tenant, sid=random_sid("SM"), status="accepted")
    post_status(twilio_webhook, tenant, second.sid, "failed", ErrorCode="21610")  # already opted out
    event = OptOutEvent.objects.for_tenant(tenant).get()
    assert event.action == "opt_out" and event.source == "error_21610"
    assert event.phone == CUSTOMER
    assert event.sender == OUR_NUMBER
    assert event.reason == ERROR_21610_REASON
    assert event.message_id == message.pk
    assert reload(message).error_code == 21610
    assert number_is_opted_out(tenant=tenant, phone=CUSTOMER)


def test_error_21610_not_recorded_when_already_opted_out(twilio_webhook, tenant):
    opt_out_record(tenant=tenant, phone=CUSTOMER, source="keyword", keyword="STOP")
    message = outbound(tenant, sid=random_sid("SM"), status="accepted")
    post_status(twilio_webhook, tenant, message.sid, "failed", ErrorCode="21610")
    assert OptOutEvent.objects.for_tenant(tenant).count() == 1


def test_error_21610_after_an_opt_in_records_again(twilio_webhook, tenant):
    """The portal's list said opted in (e.g. an admin), Twilio still blocks: the lists drifted."""
    opt_out_record(tenant=tenant, phone=CUSTOMER, source="keyword", keyword="STOP")
    opt_in_record(tenant=tenant, phone=CUSTOMER, source="admin")
    message = outbound(tenant, sid=random_sid("SM"), status="accepted")
    post_status(twilio_webhook, tenant, message.sid, "failed", ErrorCode="21610", From="")
    assert number_is_opted_out(tenant=tenant, phone=CUSTOMER)
    assert OptOutEvent.objects.for_tenant(tenant).filter(source="error_21610").count() == 1


def test_error_21610_sender_falls_back_to_the_messaging_service(twilio_webhook, tenant):
    sid = random_sid("SM")
    post_status(twilio_webhook, tenant, sid, "failed", ErrorCode="21610", From="", MessagingServiceSid=SERVICE)
    assert OptOutEvent.objects.for_tenant(tenant).get().sender == SERVICE


# --- payload validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["exploded", "pending", "blocked", "DELIVERED!"])
def test_unknown_message_status_400(twilio_webhook, tenant, status):
    response = post_status(twilio_webhook, tenant, random_sid("SM"), status)
    assert response.status_code == 400
    assert not Message.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("missing", ["MessageSid", "MessageStatus"])
def test_missing_required_field_400(twilio_webhook, tenant, missing):
    params = {"AccountSid": tenant.account_sid, "MessageSid": random_sid("SM"), "MessageStatus": "sent"}
    params[missing] = ""
    response = twilio_webhook.post(STATUS, params, token=tenant.auth_token.reveal())
    assert response.status_code == 400
    assert missing in response.content.decode()


def test_service_refuses_an_unknown_status(tenant):
    with pytest.raises(ValueError):
        status_callback_apply(tenant=tenant, params={"MessageSid": random_sid("SM"), "MessageStatus": "pending"})


# --- tenants ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["suspended", "closed"])
def test_suspended_or_closed_tenants_callbacks_still_recorded(twilio_webhook, tenant, state):
    message = outbound(tenant, sid=random_sid("SM"), status="sent")
    tenant.status = state
    tenant.save()
    assert post_status(twilio_webhook, tenant, message.sid, "delivered").status_code == 204
    assert reload(message).status == "delivered"


def test_other_tenant_cannot_touch_a_message_by_its_sid(twilio_webhook, tenant, other_tenant, caplog):
    """Tenant B signs a callback naming tenant A's MessageSid: 204, nothing changes anywhere."""
    message = outbound(tenant, sid=random_sid("SM"), status="sent")
    response = post_status(twilio_webhook, other_tenant, message.sid, "failed", ErrorCode="21610")
    assert response.status_code == 204
    message = reload(message)
    assert message.tenant_id == tenant.pk
    assert message.status == "sent" and message.error_code is None
    assert events(tenant, message) == []
    assert not Message.objects.for_tenant(other_tenant).exists()
    assert not OptOutEvent.all_tenants.exists()
    assert "twilio.webhook.foreign_message_sid" in caplog.text


def test_other_tenant_cannot_reattach_via_m_either(twilio_webhook, tenant, other_tenant):
    mine = outbound(tenant)
    post_status(twilio_webhook, other_tenant, random_sid("SM"), "sent", query=f"?m={mine.pk}")
    assert reload(mine).sid is None


def test_callback_signed_with_another_tenants_token_is_rejected(twilio_webhook, tenant, other_tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="sent")
    response = post_status(twilio_webhook, tenant, message.sid, "failed", token=other_tenant.auth_token.reveal())
    assert response.status_code == 403
    assert reload(message).status == "sent"


# --- concurrency (PostgreSQL) --------------------------------------------------------------------------


def run_concurrently(tenant, params_list):
    errors = []
    barrier = threading.Barrier(len(params_list))

    def apply(params):
        try:
            barrier.wait()
            status_callback_apply(tenant=tenant, params=params, message_id=params.pop("m", None))
        except Exception as exc:  # noqa: BLE001 - surfaced by the caller's assertion
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=apply, args=(p,)) for p in params_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_callbacks_for_an_unknown_sid_make_one_row(postgresql):
    tenant = TenantFactory(slug="race")
    sid = random_sid("SM")
    statuses = ["queued", "sent", "delivered", "delivered", "sent", "queued"]
    params = [{"MessageSid": sid, "MessageStatus": s, "From": OUR_NUMBER, "To": CUSTOMER} for s in statuses]
    assert run_concurrently(tenant, params) == []
    message = Message.objects.for_tenant(tenant).get()
    assert message.status == "delivered"
    assert sorted(events(tenant, message)) == ["delivered", "queued", "sent"]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_callbacks_reattach_once(postgresql):
    tenant = TenantFactory(slug="race")
    message = outbound(tenant)
    sid = random_sid("SM")
    params = [
        {"MessageSid": sid, "MessageStatus": s, "From": OUR_NUMBER, "To": CUSTOMER, "m": str(message.pk)}
        for s in ["queued", "sent", "delivered", "failed"]
    ]
    assert run_concurrently(tenant, params) == []
    assert Message.objects.for_tenant(tenant).count() == 1
    message = reload(message)
    assert message.sid == sid
    assert message.status in ("delivered", "failed")  # whichever final status got there first
    assert len(events(tenant, message)) == 4
