"""Drill: the broker (Redis) unreachable. Webhooks still answer 2xx and store; messages sent
meanwhile stay pending and the form says they wait for the worker; once Redis is back the
periodic release enqueues them and each reaches Twilio (the sandbox) exactly once.

In-process: the Celery app publishes through a small TCP proxy on 127.0.0.1 in front of
Redis DB 1 (the real Redis is never stopped), and the drill stops and starts the proxy. The
worker's part is played here: the tasks found on the broker are run in this process.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections import Counter

import pytest
import redis
from celery import current_app
from django.conf import settings
from django.urls import reverse

from commsportal.celery import app
from messaging.delivery import enqueue
from messaging.delivery.deferred import deferred_messages_release
from messaging.delivery.enqueue import MESSAGE_DELIVER_TASK, UNQUEUED_REASON, task_delay
from messaging.delivery.queueing import message_send
from messaging.models import Message
from messaging.tasks.delivery import deferred_messages_release_task
from tests.conftest import random_sid, redis_reachable
from tests.messaging.sending_support import SENDER, sandbox_messages
from tests.proxies import TcpProxy
from tests.tenants.factories import PhoneNumberFactory

REDIS = ("127.0.0.1", 6379)
BROKER_DB = 1
STATUS = "/webhooks/twilio/messaging/status/"
INBOUND = "/webhooks/twilio/messaging/inbound/"
RECIPIENTS = [f"+121255502{i:02d}" for i in range(6)]


def _broker_use(url: str, transport_options: dict) -> None:
    """Point the Celery app's publishing at `url`, dropping its pooled connections. Celery reads
    a CELERY_BROKER_URL environment variable (CI sets one) before its own configuration, so
    that is pointed too."""
    if "CELERY_BROKER_URL" in os.environ:
        os.environ["CELERY_BROKER_URL"] = url
    app.conf.broker_url, app.conf.broker_transport_options = url, transport_options
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def proxied_broker():
    """Publishing through the proxy, under a key prefix of the drill's own: DB 1 may be shared,
    and another worker on it must not take (nor this drill flush) anyone else's tasks."""
    if not redis_reachable(f"redis://{REDIS[0]}:{REDIS[1]}/{BROKER_DB}"):
        pytest.skip("no Redis on 127.0.0.1:6379")
    proxy = TcpProxy(REDIS)
    proxy.start()
    proxy.prefix = f"drill-broker-down-{secrets.token_hex(4)}:"
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    # Services publish through `celery.current_app`: make sure it is the project's app, whatever
    # app an earlier test created.
    previous_app = current_app._get_current_object()
    app.set_current()
    app.conf.task_always_eager = False
    _broker_use(
        f"redis://127.0.0.1:{proxy.port}/{BROKER_DB}",
        {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": proxy.prefix},
    )
    yield proxy
    proxy.stop()
    app.conf.task_always_eager = saved[2]
    _broker_use(saved[0], saved[1])
    previous_app.set_current()
    direct = redis.Redis(host=REDIS[0], port=REDIS[1], db=BROKER_DB)
    for key in direct.scan_iter(match=f"{proxy.prefix}*", count=1000):
        direct.delete(key)
    direct.close()


def _worker_drain(prefix: str) -> Counter:
    """Run every task waiting on the drill's queue (Redis DB 1, ``<prefix>celery``), oldest
    first, as a worker would; how many of each name ran."""
    ran: Counter = Counter()
    direct = redis.Redis(host=REDIS[0], port=REDIS[1], db=BROKER_DB)
    try:
        for _ in range(1000):  # bounded
            raw = direct.rpop(f"{prefix}celery")
            if raw is None:
                break
            envelope = json.loads(raw)
            args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
            name = envelope["headers"]["task"]
            app.tasks[name].apply(args=args, kwargs=kwargs)
            ran[name] += 1
    finally:
        direct.close()
    return ran


@pytest.fixture
def admin_client(client, twilio_tenant, tenant_admin):
    PhoneNumberFactory(tenant=twilio_tenant, phone_number=SENDER)
    client.force_login(tenant_admin)
    return client


def test_a_publish_to_an_unreachable_broker_fails_fast_and_is_reported(proxied_broker):
    proxied_broker.stop()
    started = time.monotonic()
    assert task_delay("commsportal.ping", "x") is False
    assert time.monotonic() - started < 3
    proxied_broker.start()
    assert task_delay("commsportal.ping", "x") is True


def test_an_unqueued_message_is_enqueued_at_the_next_release_not_after_stale_after(
    twilio_tenant, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(enqueue, "task_delay", lambda name, *args: False)
    with django_capture_on_commit_callbacks(execute=True):
        message = message_send(
            tenant=twilio_tenant, to=RECIPIENTS[0], body="Hi", purpose="transactional", sender=SENDER
        )
    assert Message.all_tenants.get(pk=message.pk).failure_reason == UNQUEUED_REASON

    published = []
    monkeypatch.setattr(enqueue, "task_delay", lambda name, *args: published.append((name, *args)) or True)
    with django_capture_on_commit_callbacks(execute=True):
        assert deferred_messages_release() == 1
    assert published == [(MESSAGE_DELIVER_TASK, message.pk)]
    assert Message.all_tenants.get(pk=message.pk).failure_reason == ""
    with django_capture_on_commit_callbacks(execute=True):
        assert deferred_messages_release() == 0  # touched: not again before STALE_AFTER


def test_after_one_failed_publish_the_rest_of_a_batch_waits_without_trying(
    twilio_tenant, monkeypatch, django_capture_on_commit_callbacks
):
    tried = []
    monkeypatch.setattr(enqueue, "task_delay", lambda name, *args: tried.append(args) and False)
    ids = [
        message_send(tenant=twilio_tenant, to=to, body="Hi", purpose="transactional", sender=SENDER).pk
        for to in RECIPIENTS[:3]
    ]
    with django_capture_on_commit_callbacks(execute=True):
        unqueued = enqueue.deliveries_enqueue_on_commit(ids)
    assert (tried, unqueued) == ([(ids[0],)], ids)
    assert set(Message.all_tenants.values_list("failure_reason", flat=True)) == {UNQUEUED_REASON}


@pytest.mark.django_db(transaction=True)  # on_commit publishes at once, as in production
def test_send_form_says_queued_for_the_worker_when_the_publish_failed(admin_client, twilio_tenant, monkeypatch):
    monkeypatch.setattr(enqueue, "task_delay", lambda name, *args: False)
    url = reverse("message_send", kwargs={"tenant_slug": twilio_tenant.slug})
    page = admin_client.post(
        url, {"to": RECIPIENTS[0], "purpose": "transactional", "sender": SENDER, "body": "Hi"}, follow=True
    ).content.decode()
    assert "Queued: it will be sent when the worker is reachable." in page
    assert "watch its status change" not in page


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # commits as in production: on_commit publishes at once
def test_drill_broker_down(proxied_broker, admin_client, twilio_tenant, twilio_webhook, sandbox):
    started = time.monotonic()
    token = twilio_tenant.auth_token.reveal()
    sent_before = Message.objects.create(
        tenant=twilio_tenant,
        direction="outbound",
        sid=random_sid("SM"),
        status="sent",
        from_number=SENDER,
        to_number="+12125550299",
        body="Sent before the outage",
    )
    proxied_broker.stop()
    answers: Counter = Counter()

    # Webhooks during the outage: a final status with unknown segments wants a task, and a text.
    for status in ("sent", "delivered"):
        params = {"AccountSid": twilio_tenant.account_sid, "MessageSid": sent_before.sid, "MessageStatus": status}
        answers[twilio_webhook.post(STATUS, params, token=token).status_code] += 1
    inbound_sids = [random_sid("SM") for _ in range(3)]
    for sid in inbound_sids:
        params = {
            "AccountSid": twilio_tenant.account_sid,
            "MessageSid": sid,
            "From": "+12125550298",
            "To": SENDER,
            "Body": "Is my order on its way?",
            "NumMedia": "0",
        }
        answers[twilio_webhook.post(INBOUND, params, token=token).status_code] += 1

    # One-off sends during the outage: stored pending, and the form says they wait.
    url = reverse("message_send", kwargs={"tenant_slug": twilio_tenant.slug})
    for to in RECIPIENTS:
        response = admin_client.post(
            url, {"to": to, "purpose": "transactional", "sender": SENDER, "body": f"Order for {to}"}, follow=True
        )
        answers[response.redirect_chain[0][1] if response.redirect_chain else response.status_code] += 1
        answers[response.status_code] += 1  # the message page it lands on
        page = response.content.decode()
        assert "it will be sent when the worker is reachable" in page, page[:3000]
        assert "watch its status change" not in page
    outbound = Message.objects.for_tenant(twilio_tenant).filter(to_number__in=RECIPIENTS)
    assert sorted(outbound.values_list("status", flat=True)) == ["pending"] * len(RECIPIENTS)
    assert set(outbound.values_list("failure_reason", flat=True)) == {UNQUEUED_REASON}

    # The broker is back: beat's next release run enqueues them, the worker sends each once.
    proxied_broker.start()
    assert deferred_messages_release_task.apply().get() == len(RECIPIENTS)
    # A second release run before the worker took them enqueues nothing more.
    assert deferred_messages_release_task.apply().get() == 0
    ran = _worker_drain(proxied_broker.prefix)
    assert ran[MESSAGE_DELIVER_TASK] == len(RECIPIENTS)

    at_twilio = Counter(m["to"] for to in RECIPIENTS for m in sandbox_messages(sandbox, to))
    stored = Message.objects.for_tenant(twilio_tenant)
    report = {
        "requests": sum(answers.values()),
        "5xx": sum(n for code, n in answers.items() if code >= 500),
        "lost": len(inbound_sids)
        - stored.filter(sid__in=inbound_sids).count()
        + sum(1 for to in RECIPIENTS if at_twilio[to] == 0)
        + (0 if stored.get(pk=sent_before.pk).status == "delivered" else 1),
        "duplicated": sum(n - 1 for n in at_twilio.values() if n > 1),
        "seconds": round(time.monotonic() - started, 1),
    }
    print("broker-down drill:", report)
    assert all(200 <= code < 400 for code in answers), answers
    assert (report["lost"], report["duplicated"]) == (0, 0), report
    assert all(m.failure_reason == "" and m.sid for m in outbound.all())
