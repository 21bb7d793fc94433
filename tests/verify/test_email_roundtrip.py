"""Send -> the sandbox's SendGrid -> its signed Event Webhook batches -> the email log, over
real HTTP: what the demo does offline."""

from __future__ import annotations

import time

import requests
from django.db import OperationalError
from django.urls import reverse

from tests.tenants.factories import TenantFactory, UserFactory
from tests.verify.conftest import EVENTS_PATH
from verify.email.sending import email_send
from verify.models import EmailEvent, EmailMessage, EmailSuppression


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OperationalError:  # SQLite's shared in-memory database while the server writes
            pass
        time.sleep(0.05)
    return False


def events_of(email):
    return sorted(EmailEvent.all_tenants.filter(message_id=email.pk).values_list("event", flat=True))


def status_of(email):
    return EmailMessage.all_tenants.get(pk=email.pk).status


def test_sent_email_is_tracked_to_delivered_bounced_and_spam(
    live_server, sandbox, sandbox_settings, celery_eager, client
):
    tenant = TenantFactory(slug="acme")
    admin = UserFactory(username="alice", tenant=tenant, role="admin")
    sandbox.sendgrid_event_webhook_url = live_server.url + EVENTS_PATH

    def send(to):
        return email_send(tenant=tenant, to=to, subject="Your receipt", text="Thanks", category="consent_receipt")

    # One at a time: SQLite (the quick loop's database) locks under concurrent webhook writes.
    ok = send("ana@example.com")
    assert wait_for(lambda: events_of(ok) == ["delivered", "processed"])
    bounced = send("bounce@example.com")
    assert wait_for(lambda: events_of(bounced) == ["bounce", "processed"])
    spam = send("spam@example.com")
    assert wait_for(lambda: events_of(spam) == ["delivered", "processed", "spamreport"])
    assert (status_of(ok), status_of(bounced), status_of(spam)) == ("delivered", "bounced", "delivered")
    reasons = dict(EmailSuppression.objects.for_tenant(tenant).values_list("email", "reason"))
    assert reasons == {"bounce@example.com": "bounce", "spam@example.com": "spamreport"}
    assert all(w["status_code"] == 200 for w in sandbox.webhooks() if w["kind"] == "sendgrid_events")

    client.force_login(admin)
    log = client.get(reverse("email_list", kwargs={"tenant_slug": "acme"}))
    statuses = {e.to_email: e.status for e in log.context["page"].rows}
    assert statuses == {
        "ana@example.com": "delivered",
        "bounce@example.com": "bounced",
        "spam@example.com": "delivered",
    }
    assert b'data-status="delivered"' in log.content

    later = send("bounce@example.com")
    assert later.status == "suppressed" and len(sandbox.sendgrid_mails()) == 3


def test_sandbox_refuses_a_wrong_key_like_sendgrid(sandbox):
    url = sandbox.base_url + "/v3/mail/send"
    payload = {"personalizations": [{"to": [{"email": "a@example.com"}]}], "from": {"email": "p@example.com"}}
    wrong = requests.post(url, json=payload, headers={"Authorization": "Bearer SG.nope"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["errors"][0]["message"].startswith("The provided authorization")
    scoped = requests.post(
        url, json=payload, headers={"Authorization": f"Bearer {sandbox.sendgrid_restricted_key}"}, timeout=5
    )
    assert scoped.status_code == 403
    bad = requests.post(url, json=payload, headers={"Authorization": f"Bearer {sandbox.sendgrid_api_key}"}, timeout=5)
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {"subject", "content"}
    good = {**payload, "subject": "Hi", "content": [{"type": "text/plain", "value": "Hi"}], "custom_args": {"a": "1"}}
    accepted = requests.post(url, json=good, headers={"Authorization": f"Bearer {sandbox.sendgrid_api_key}"}, timeout=5)
    assert accepted.status_code == 202 and accepted.content == b"" and accepted.headers["X-Message-Id"]
    numeric = {**good, "custom_args": {"tenant": 1}}
    refused = requests.post(
        url, json=numeric, headers={"Authorization": f"Bearer {sandbox.sendgrid_api_key}"}, timeout=5
    )
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "custom_args"
    info = requests.get(sandbox.base_url + "/sandbox/sendgrid", timeout=5).json()
    assert info["webhook_public_key"] == sandbox.sendgrid_public_key and len(info["mails"]) == 1
