"""The periodic resync heals what lost webhooks never told the portal: a final status whose
callback failed, an inbound STOP whose webhook failed. Idempotent, and each tenant is asked with
its own client. Status callbacks from the sandbox go to a closed port here: every one is lost."""

from __future__ import annotations

import time
from datetime import time as wall_time
from datetime import timedelta

import pytest
import requests
from django.core.cache import cache
from django.utils import timezone

from messaging.compliance.policy import sending_policy_get
from messaging.delivery import resync
from messaging.delivery.attempts import Outcome, message_deliver
from messaging.delivery.queueing import message_send
from messaging.delivery.resync import messages_resync
from messaging.ledgers.reachability import number_is_opted_out
from messaging.models import Message, MessageEvent, OptOutEvent
from messaging.schedules import PERIODIC_TASKS
from messaging.tasks.delivery import messages_resync_task
from tenants.twilio import TwilioError
from tests.messaging.sending_support import NY, SENDER, sandbox_messages
from tests.tenants.factories import PhoneNumberFactory, TenantFactory

OUR_NUMBER = "+14155550177"
LOST_WEBHOOK = "http://127.0.0.1:9/webhooks/twilio/messaging/inbound/"


@pytest.fixture(autouse=True)
def _fresh_watermarks():
    cache.clear()


@pytest.fixture
def open_all_day(twilio_tenant):
    policy = sending_policy_get(tenant=twilio_tenant)
    policy.quiet_start, policy.quiet_end = wall_time(0, 0), wall_time(23, 59, 59, 999999)
    policy.save()
    return twilio_tenant


def later(minutes: int = 11):
    return timezone.now() + timedelta(minutes=minutes)


def wait_for_status(sandbox, to: str, status: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sandbox_messages(sandbox, to)[0]["status"] == status:
            return
        time.sleep(0.05)
    pytest.fail(f"the sandbox never reached {status}")


def text_in(sandbox, *, to: str, body: str, sender: str = NY) -> str:
    """An inbound text whose webhook fails (the portal was down): Twilio still holds it."""
    answer = requests.post(
        f"{sandbox.base_url}/sandbox/inbound", data={"From": sender, "To": to, "Body": body}, timeout=10
    )
    answer.raise_for_status()
    assert answer.json()["status_code"] is None  # the webhook never got an answer
    return answer.json()["message_sid"]


def test_a_lost_delivered_callback_heals_on_the_next_run(open_all_day, sandbox):
    tenant = open_all_day
    message = message_send(tenant=tenant, to=NY, body="Your order shipped", purpose="transactional", sender=SENDER)
    assert message_deliver(message_id=message.pk) == Outcome.SENT
    wait_for_status(sandbox, NY, "delivered")
    assert Message.all_tenants.get(pk=message.pk).status == "queued"  # every callback was lost

    assert messages_resync(now=later(minutes=2)).statuses_applied == 0  # not stale yet
    assert messages_resync(now=later()).statuses_applied == 1
    healed = Message.all_tenants.get(pk=message.pk)
    assert healed.status == "delivered"
    assert MessageEvent.objects.for_tenant(tenant).filter(message=healed, status="delivered").count() == 1

    timeline = MessageEvent.objects.for_tenant(tenant).filter(message=healed).count()
    assert messages_resync(now=later()).statuses_applied == 0  # a rerun changes nothing
    assert MessageEvent.objects.for_tenant(tenant).filter(message=healed).count() == timeline


def test_a_lost_inbound_stop_is_stored_and_opts_out_exactly_once(twilio_tenant, sandbox):
    tenant = twilio_tenant
    sandbox.seed_number(tenant.account_sid, OUR_NUMBER, SmsUrl=LOST_WEBHOOK)
    PhoneNumberFactory(tenant=tenant, phone_number=OUR_NUMBER)
    sid = text_in(sandbox, to=OUR_NUMBER, body="STOP")
    assert not number_is_opted_out(tenant=tenant, phone=NY)

    assert messages_resync().inbound_stored == 1
    stored = Message.objects.for_tenant(tenant).get(sid=sid)
    assert (stored.direction, stored.body, stored.from_number) == ("inbound", "STOP", NY)
    assert number_is_opted_out(tenant=tenant, phone=NY)
    opt_outs = OptOutEvent.objects.for_tenant(tenant).count()
    assert opt_outs == 1

    assert messages_resync().inbound_stored == 0
    cache.clear()  # even with the watermark lost, the SID is stored once and applied once
    assert messages_resync().inbound_stored == 0
    assert OptOutEvent.objects.for_tenant(tenant).count() == opt_outs
    assert Message.objects.for_tenant(tenant).filter(sid=sid).count() == 1


def test_each_tenant_is_asked_with_its_own_client(twilio_tenant, other_tenant, sandbox, monkeypatch):
    sandbox.register_account(other_tenant.account_sid, other_tenant.auth_token.reveal())
    sandbox.seed_number(twilio_tenant.account_sid, OUR_NUMBER, SmsUrl=LOST_WEBHOOK)
    PhoneNumberFactory(tenant=twilio_tenant, phone_number=OUR_NUMBER)
    # A stale row naming the same number under the other tenant must not reach this tenant's texts.
    PhoneNumberFactory(tenant=other_tenant, phone_number=OUR_NUMBER)
    unknown = TenantFactory()  # Twilio refuses it: skipped, the others still run
    real_client = resync.tenant_client

    def client_for(tenant):
        if tenant.pk == unknown.pk:
            raise TwilioError(code=20003, status=401, retryable=False, message="Authenticate")
        return real_client(tenant)

    monkeypatch.setattr(resync, "tenant_client", client_for)
    sid = text_in(sandbox, to=OUR_NUMBER, body="STOP")

    result = messages_resync()
    assert result.inbound_stored == 1 and result.failed_tenants == [unknown.slug]
    assert Message.all_tenants.get(sid=sid).tenant_id == twilio_tenant.pk
    assert not number_is_opted_out(tenant=other_tenant, phone=NY)


def test_the_resync_is_a_registered_periodic_task(twilio_tenant):
    [entry] = [t for t in PERIODIC_TASKS if t["task"] == "messaging.tasks.messages_resync_task"]
    assert entry["every"] == timedelta(minutes=5)
    assert messages_resync_task.name == "messaging.tasks.messages_resync_task"
    assert messages_resync_task.apply().get()["statuses_applied"] == 0


def test_a_drill_can_shorten_the_stale_threshold(open_all_day, sandbox):
    """The database-cut drill asks at once rather than wait out STALE_AFTER."""
    tenant = open_all_day
    message = message_send(tenant=tenant, to=NY, body="Your order shipped", purpose="transactional", sender=SENDER)
    assert message_deliver(message_id=message.pk) == Outcome.SENT
    wait_for_status(sandbox, NY, "delivered")

    assert messages_resync().statuses_applied == 0  # the default waits ten minutes
    assert messages_resync_task.apply(kwargs={"stale_after_seconds": 0}).get()["statuses_applied"] == 1
    assert Message.all_tenants.get(pk=message.pk).status == "delivered"
