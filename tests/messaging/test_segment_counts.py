"""Segments of a sent message: from the send's answer, else fetched once it is final.

Through a Messaging Service Twilio answers `num_segments` "0" at create (the sandbox too); the
status callback then enqueues one fetch, on commit, never calling Twilio on the webhook's path.
"""

from __future__ import annotations

import time

from messaging.delivery.attempts import Outcome, message_deliver
from messaging.delivery.queueing import message_send
from messaging.delivery.segments import sms_segments
from messaging.intake.status import status_callback_apply
from messaging.models import Message
from messaging.tasks.delivery import message_segments_fetch_task
from tenants.twilio import tenant_client
from tests.messaging.sending_support import NY, SENDER, reload, sandbox_messages

BODY = "Your order shipped and will arrive tomorrow between 9 and 5. " * 3
SEGMENTS = sms_segments(BODY)  # 2 GSM-7 segments


def _through_service(tenant, sandbox) -> None:
    client = tenant_client(tenant)
    service = client.messaging.v1.services.create(friendly_name="Acme")
    number = sandbox.seed_number(tenant.account_sid, "+14155550188")
    client.messaging.v1.services(service.sid).phone_numbers.create(phone_number_sid=number["sid"])
    tenant.messaging_service_sid = service.sid
    tenant.save()


def _wait_at_twilio(sandbox, status: str) -> dict:
    for _ in range(100):
        [found] = sandbox_messages(sandbox, NY)
        if found["status"] == status:
            return found
        time.sleep(0.05)
    raise AssertionError(f"the sandbox never reported {status}")


def test_segments_come_from_the_send_answer(twilio_tenant, sandbox):
    message = message_send(tenant=twilio_tenant, to=NY, body=BODY, purpose="transactional", sender=SENDER)
    assert message_deliver(message_id=message.pk) == Outcome.SENT
    assert SEGMENTS == 2 and reload(message).num_segments == SEGMENTS


def test_service_send_fetches_segments_once_final_off_the_webhook_path(
    twilio_tenant, sandbox, celery_eager, django_capture_on_commit_callbacks
):
    _through_service(twilio_tenant, sandbox)
    message = message_send(tenant=twilio_tenant, to=NY, body=BODY, purpose="transactional")
    assert message_deliver(message_id=message.pk) == Outcome.SENT
    message = reload(message)
    assert message.num_segments is None  # Twilio said 0: unknown, not "0 segments"
    _wait_at_twilio(sandbox, "delivered")

    params = {"MessageSid": message.sid, "MessageStatus": "sent"}
    with django_capture_on_commit_callbacks() as callbacks:
        status_callback_apply(tenant=twilio_tenant, params=params)
    assert callbacks == []  # not final yet: nothing to fetch

    params = {"MessageSid": message.sid, "MessageStatus": "delivered"}
    with django_capture_on_commit_callbacks() as callbacks:
        status_callback_apply(tenant=twilio_tenant, params=params)
    assert len(callbacks) == 1 and reload(message).num_segments is None  # no Twilio call on the webhook
    callbacks[0]()  # the commit publishes the task (eager here)
    assert message_segments_fetch_task.name == "messaging.tasks.message_segments_fetch_task"
    assert reload(message).num_segments == SEGMENTS


def test_no_fetch_when_segments_are_known(twilio_tenant, sandbox, django_capture_on_commit_callbacks):
    message = message_send(tenant=twilio_tenant, to=NY, body=BODY, purpose="transactional", sender=SENDER)
    assert message_deliver(message_id=message.pk) == Outcome.SENT
    with django_capture_on_commit_callbacks() as callbacks:
        status_callback_apply(
            tenant=twilio_tenant, params={"MessageSid": reload(message).sid, "MessageStatus": "delivered"}
        )
    assert callbacks == []
    assert Message.objects.for_tenant(twilio_tenant).get(pk=message.pk).num_segments == SEGMENTS
