"""Twilio unreachable for minutes loses nothing: one-off sends wait in the database instead of
spending their retry budget, are sent exactly once when Twilio is back, or expire by their
purpose's deadline with a reason. Drives the local sandbox's outage mode and a clock the test
moves (`django.utils.timezone.now`)."""

from __future__ import annotations

from datetime import time as wall_time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from django.utils import timezone

from messaging.compliance.policy import sending_policy_get
from messaging.delivery.attempts import DeliveryRetry, Outcome, message_deliver
from messaging.delivery.deferred import deferred_messages_release
from messaging.delivery.queueing import message_send
from messaging.delivery.retries import otp_validity
from messaging.models import Message, MessageEvent
from messaging.tasks import delivery as delivery_tasks
from messaging.tasks.delivery import message_deliver_task
from tests.messaging.sending_support import FL, NY, SENDER, add_fault, grant_marketing, sandbox_messages

RECIPIENTS = [f"+121255501{i:02d}" for i in range(10)]


@pytest.fixture
def clock(monkeypatch):
    """`timezone.now()` as the test sets it: `clock.advance(minutes=11)`."""

    class Clock:
        def __init__(self) -> None:
            self.offset = timedelta()
            self._real = timezone.now

        def now(self):
            return self._real() + self.offset

        def advance(self, **delta) -> None:
            self.offset += timedelta(**delta)

    moving = Clock()
    monkeypatch.setattr(timezone, "now", moving.now)
    return moving


@pytest.fixture
def quick_tasks(monkeypatch, celery_eager):
    """Eager tasks without the waits (backoff and pacing) that only cost wall time here."""
    monkeypatch.setattr(delivery_tasks, "backoff_countdown", lambda retries, ambiguous=False: 0)
    monkeypatch.setattr(delivery_tasks, "pacing_wait", lambda message_id: 0.0)
    return celery_eager


@pytest.fixture
def open_all_day(twilio_tenant):
    policy = sending_policy_get(tenant=twilio_tenant)
    policy.quiet_start, policy.quiet_end = wall_time(0, 0), wall_time(23, 59, 59, 999999)
    policy.save()
    return twilio_tenant


def reload(message: Message) -> Message:
    return Message.all_tenants.get(pk=message.pk)


def shipped(tenant) -> Message:
    return message_send(tenant=tenant, to=NY, body="Your order shipped", purpose="transactional", sender=SENDER)


def release_and_run(*, now, capture) -> int:
    """The periodic release at `now`, running the delivery tasks it enqueues (eager)."""
    with capture(execute=True):
        return deferred_messages_release(now=now)


def test_ten_sends_during_an_outage_are_sent_exactly_once_after_it(
    open_all_day, sandbox, quick_tasks, clock, django_capture_on_commit_callbacks
):
    tenant = open_all_day
    sandbox.outage_begin()
    try:
        messages = [
            message_send(tenant=tenant, to=to, body=f"Order {i} shipped", purpose="transactional", sender=SENDER)
            for i, to in enumerate(RECIPIENTS)
        ]
        for message in messages:
            assert message_deliver_task.delay(message.pk).get() == Outcome.POSTPONED
        for message in map(reload, messages):
            assert (message.status, message.sid, message.send_attempts) == ("pending", None, 0)
            assert (message.gate_decision, message.gate_reason) == ("defer", "twilio_unavailable")
            assert message.send_after > clock.now()

        clock.advance(minutes=2)  # still down: the release tries again, nothing is lost
        assert release_and_run(now=clock.now(), capture=django_capture_on_commit_callbacks) == 10
        assert {reload(m).status for m in messages} == {"pending"}
    finally:
        sandbox.outage_end()

    clock.advance(minutes=8)
    assert release_and_run(now=clock.now(), capture=django_capture_on_commit_callbacks) == 10
    for i, (message, to) in enumerate(zip(map(reload, messages), RECIPIENTS, strict=True)):
        at_twilio = [m for m in sandbox_messages(sandbox, to) if m["body"] == f"Order {i} shipped"]
        assert len(at_twilio) == 1 and message.sid == at_twilio[0]["sid"]
        assert message.status != "failed" and message.send_attempts == 1
    # Running the release again sends nothing more.
    clock.advance(minutes=10)
    release_and_run(now=clock.now(), capture=django_capture_on_commit_callbacks)
    assert sum(len(sandbox_messages(sandbox, to)) for to in RECIPIENTS) == 10


def test_a_maybe_sent_message_is_looked_up_after_the_outage_not_resent(
    open_all_day, sandbox, quick_tasks, clock, django_capture_on_commit_callbacks
):
    """The request reached Twilio but the answer was lost; then Twilio went away. The lookups
    that fail during the outage spend nothing; afterwards the lookup finds it."""
    message = shipped(open_all_day)
    add_fault(sandbox, path_contains="/Messages.json", method="POST", mode="accept_then_drop", count=1)
    with pytest.raises(DeliveryRetry) as raised:
        message_deliver(message_id=message.pk)
    assert raised.value.ambiguous and raised.value.error.maybe_sent
    sandbox.outage_begin()
    try:
        assert message_deliver_task.delay(message.pk).get() == Outcome.POSTPONED
        assert reload(message).send_attempts == 1  # the lookups counted nothing
    finally:
        sandbox.outage_end()
    clock.advance(minutes=2)
    release_and_run(now=clock.now(), capture=django_capture_on_commit_callbacks)
    at_twilio = sandbox_messages(sandbox, NY)
    assert len(at_twilio) == 1 and reload(message).sid == at_twilio[0]["sid"]


def test_an_otp_past_its_validity_expires_with_a_reason(
    open_all_day, sandbox, quick_tasks, clock, django_capture_on_commit_callbacks
):
    sandbox.outage_begin()
    try:
        message = message_send(tenant=open_all_day, to=NY, body="Your code is 123456", purpose="otp", sender=SENDER)
        assert message_deliver_task.delay(message.pk).get() == Outcome.POSTPONED
    finally:
        sandbox.outage_end()
    clock.advance(seconds=otp_validity().total_seconds() + 60)
    release_and_run(now=clock.now(), capture=django_capture_on_commit_callbacks)
    message = reload(message)
    assert message.status == "failed" and message.sid is None
    assert "Expired unsent" in message.failure_reason and "10-minute validity" in message.failure_reason
    assert sandbox_messages(sandbox, NY) == []
    assert MessageEvent.objects.for_tenant(open_all_day).filter(message=message, status="failed").count() == 1


def test_an_otp_within_its_validity_is_sent_after_the_outage(
    open_all_day, sandbox, quick_tasks, clock, django_capture_on_commit_callbacks
):
    sandbox.outage_begin()
    try:
        message = message_send(tenant=open_all_day, to=NY, body="Your code is 654321", purpose="otp", sender=SENDER)
        assert message_deliver_task.delay(message.pk).get() == Outcome.POSTPONED
    finally:
        sandbox.outage_end()
    clock.advance(minutes=2)
    release_and_run(now=clock.now(), capture=django_capture_on_commit_callbacks)
    assert reload(message).sid == sandbox_messages(sandbox, NY)[0]["sid"]


def test_answered_errors_still_spend_the_budget(open_all_day, sandbox, quick_tasks):
    """Twilio answering 429 every time is not an outage: the message still gives up."""
    add_fault(sandbox, path_contains="/Messages.json", method="POST", status=429, code=20429, count=20)
    message = shipped(open_all_day)
    assert message_deliver_task.delay(message.pk).get() == Outcome.FAILED
    assert reload(message).failure_reason.startswith("Gave up after 7 attempt(s)")


def test_the_sandbox_outage_refuses_connections_and_ends_over_its_control_api(sandbox):
    answer = requests.post(f"{sandbox.base_url}/sandbox/outage", data={"seconds": "0.5"}, timeout=5)
    assert answer.status_code == 202
    deadline = timezone.now() + timedelta(seconds=5)
    refused = False
    while timezone.now() < deadline and not refused:
        try:
            requests.get(f"{sandbox.base_url}/sandbox/faults", timeout=1)
        except requests.ConnectionError:
            refused = True
    assert refused
    while timezone.now() < deadline:
        try:
            assert requests.get(f"{sandbox.base_url}/sandbox/faults", timeout=1).status_code == 200
            return
        except requests.ConnectionError:
            continue
    pytest.fail("the sandbox did not listen again after its outage")


def test_the_sandbox_outage_control_api_needs_a_duration(sandbox):
    answer = requests.post(f"{sandbox.base_url}/sandbox/outage", data={}, timeout=5)
    assert answer.status_code == 400


def test_marketing_postponed_by_an_outage_is_not_sent_into_quiet_hours(
    twilio_tenant, sandbox, quick_tasks, clock, django_capture_on_commit_callbacks
):
    miami = ZoneInfo("America/New_York")
    morning = (clock.now() + timedelta(days=1)).astimezone(miami).replace(hour=10, minute=0, second=0)
    clock.advance(seconds=(morning - clock.now()).total_seconds())
    grant_marketing(twilio_tenant, FL)
    sandbox.outage_begin()
    try:
        message = message_send(tenant=twilio_tenant, to=FL, body="Sale!", purpose="marketing", sender=SENDER)
        assert message_deliver_task.delay(message.pk).get() == Outcome.POSTPONED
    finally:
        sandbox.outage_end()

    clock.advance(hours=11, minutes=30)  # 21:30 in Miami: Twilio is back, but it is too late
    release_and_run(now=clock.now(), capture=django_capture_on_commit_callbacks)
    waiting = reload(message)
    assert (waiting.status, waiting.gate_decision, waiting.gate_reason) == ("pending", "defer", "quiet_hours")
    assert waiting.send_after.astimezone(miami).hour >= 8 and waiting.send_after > clock.now()
    assert sandbox_messages(sandbox, FL) == []

    clock.advance(seconds=(waiting.send_after - clock.now()).total_seconds() + 60)
    release_and_run(now=clock.now(), capture=django_capture_on_commit_callbacks)
    assert reload(message).sid == sandbox_messages(sandbox, FL)[0]["sid"]
    assert len(sandbox_messages(sandbox, FL)) == 1
