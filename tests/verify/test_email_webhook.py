"""SendGrid's signed Event Webhook: signatures (valid, invalid, stale, replayed), batches that
mix tenants, and the suppression list its events feed, which every later send checks."""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.tenants.factories import TenantFactory
from tests.verify.conftest import EVENTS_PATH
from verify.email.sending import email_send
from verify.models import EmailEvent, EmailMessage, EmailSuppression

pytestmark = pytest.mark.django_db


def event(tenant, kind="delivered", email="ana@example.com", **extra):
    data = {
        "email": email,
        "timestamp": int(time.time()),
        "event": kind,
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": "abc.filter0001",
    }
    if tenant is not None:
        data["tenant"] = str(tenant.pk)
    return {**data, **extra}


def nothing_written():
    return not EmailEvent.all_tenants.exists() and not EmailSuppression.all_tenants.exists()


def test_signed_batch_is_stored(tenant, sendgrid_webhook):
    response = sendgrid_webhook.post([event(tenant, "processed"), event(tenant, "delivered")])
    assert response.status_code == 200
    assert response.json() == {"stored": 2, "duplicate": 0, "unknown_tenant": 0, "invalid": 0}
    assert sorted(EmailEvent.objects.for_tenant(tenant).values_list("event", flat=True)) == ["delivered", "processed"]


def test_unsigned_batch_is_refused_and_writes_nothing(client, tenant, sandbox_settings):
    response = client.post(EVENTS_PATH, json.dumps([event(tenant, "bounce")]), content_type="application/json")
    assert response.status_code == 403 and nothing_written()


def test_batch_signed_with_another_key_is_refused(tenant, sendgrid_webhook, client):
    body = json.dumps([event(tenant, "spamreport")])
    stranger = ec.generate_private_key(ec.SECP256R1())
    timestamp = str(int(time.time()))
    forged = base64.b64encode(stranger.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))).decode()
    headers = {
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": forged,
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": timestamp,
    }
    assert client.post(EVENTS_PATH, body, content_type="application/json", **headers).status_code == 403
    assert nothing_written()


def test_tampered_body_is_refused(tenant, sendgrid_webhook, client):
    body = json.dumps([event(tenant, "delivered")])
    signed = sendgrid_webhook.sandbox.sendgrid_sign(body)
    tampered = body.replace("delivered", "bounce")
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in signed.items()}
    assert client.post(EVENTS_PATH, tampered, content_type="application/json", **extra).status_code == 403
    assert nothing_written()


def test_signature_over_another_timestamp_is_refused(tenant, sendgrid_webhook, client):
    body = json.dumps([event(tenant)])
    signed = sendgrid_webhook.sandbox.sendgrid_sign(body, str(int(time.time())))
    signed["X-Twilio-Email-Event-Webhook-Timestamp"] = str(int(time.time()) - 1)
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in signed.items()}
    assert client.post(EVENTS_PATH, body, content_type="application/json", **extra).status_code == 403
    assert nothing_written()


@pytest.mark.parametrize("skew", [-400, 400, -86400])  # well past the 300 s limit: a loaded machine takes time
def test_stale_or_future_timestamp_is_refused(tenant, sendgrid_webhook, skew):
    response = sendgrid_webhook.post([event(tenant, "bounce")], timestamp=str(int(time.time()) + skew))
    assert response.status_code == 403 and nothing_written()


def test_skew_is_a_setting(tenant, sendgrid_webhook, settings):
    settings.SENDGRID_WEBHOOK_MAX_SKEW_SECONDS = 3600
    assert sendgrid_webhook.post([event(tenant)], timestamp=str(int(time.time()) - 1800)).status_code == 200


def test_replayed_batch_stores_nothing_twice(tenant, sendgrid_webhook):
    batch = [event(tenant, "processed"), event(tenant, "bounce")]
    assert sendgrid_webhook.post(batch).json()["stored"] == 2
    again = sendgrid_webhook.post(batch)
    assert again.status_code == 200
    assert again.json() == {"stored": 0, "duplicate": 2, "unknown_tenant": 0, "invalid": 0}
    assert EmailEvent.objects.for_tenant(tenant).count() == 2
    assert EmailSuppression.objects.for_tenant(tenant).count() == 1


def test_duplicate_inside_one_batch_counts_once(tenant, sendgrid_webhook):
    one = event(tenant, "delivered")
    assert sendgrid_webhook.post([one, dict(one)]).json()["stored"] == 1


def test_mixed_tenant_batch_goes_to_each_tenant_and_skips_unknown(tenant, other_tenant, sendgrid_webhook):
    batch = [
        event(tenant, "bounce", email="a@example.com"),
        event(other_tenant, "spamreport", email="b@example.com"),
        event(None, "bounce", email="nobody@example.com"),
        {**event(None, "bounce"), "tenant": "999999"},
        {**event(None, "bounce"), "tenant": "acme"},
        "not an event",
        {"event": "delivered"},
    ]
    response = sendgrid_webhook.post(batch)
    assert response.status_code == 200
    assert response.json() == {"stored": 2, "duplicate": 0, "unknown_tenant": 3, "invalid": 2}
    assert list(EmailSuppression.objects.for_tenant(tenant).values_list("email", "reason")) == [
        ("a@example.com", "bounce")
    ]
    assert list(EmailSuppression.objects.for_tenant(other_tenant).values_list("email", "reason")) == [
        ("b@example.com", "spamreport")
    ]


@pytest.mark.parametrize("body", ["{not json", "", '{"event": "bounce"}', "[[[[", '"text"'])
def test_malformed_json_is_400(sendgrid_webhook, body):
    assert sendgrid_webhook.post(None, body=body).status_code == 400
    assert nothing_written()


def test_get_is_405(client):
    assert client.get(EVENTS_PATH).status_code == 405


@pytest.mark.parametrize("kind", ["bounce", "dropped", "spamreport", "unsubscribe"])
def test_suppressing_events_block_a_later_email(tenant, sendgrid_webhook, kind, celery_eager):
    sendgrid_webhook.post([event(tenant, kind, email="Ana@Example.com", reason="550 no such user")])
    entry = EmailSuppression.objects.for_tenant(tenant).get()
    assert (entry.email, entry.reason, entry.asm_group_id) == ("ana@example.com", kind, None)
    assert entry.source_event.event == kind
    later = email_send(tenant=tenant, to="ana@example.com", subject="Receipt", text="Hi", category="consent_receipt")
    assert later.status == EmailMessage.Status.SUPPRESSED
    assert not sendgrid_webhook.sandbox.sendgrid_mails()


def test_temporary_block_does_not_suppress(tenant, sendgrid_webhook):
    sendgrid_webhook.post([event(tenant, "bounce", type="blocked")])
    assert not EmailSuppression.objects.for_tenant(tenant).exists()


def test_group_unsubscribe_suppresses_only_its_group_and_resubscribe_lifts_it(tenant, sendgrid_webhook):
    sendgrid_webhook.post([event(tenant, "group_unsubscribe", asm_group_id=42)])
    entry = EmailSuppression.objects.for_tenant(tenant).get()
    assert (entry.reason, entry.asm_group_id) == ("group_unsubscribe", 42)

    def status(group):
        return email_send(
            tenant=tenant, to="ana@example.com", subject="s", text="t", category="notice", asm_group_id=group
        ).status

    assert status(42) == EmailMessage.Status.SUPPRESSED
    assert status(43) == EmailMessage.Status.QUEUED
    assert status(None) == EmailMessage.Status.QUEUED
    sendgrid_webhook.post([event(tenant, "group_resubscribe", asm_group_id=42)])
    assert not EmailSuppression.objects.for_tenant(tenant).exists()
    assert status(42) == EmailMessage.Status.QUEUED


def test_group_resubscribe_never_lifts_a_global_suppression(tenant, sendgrid_webhook):
    sendgrid_webhook.post([event(tenant, "bounce")])
    sendgrid_webhook.post([event(tenant, "group_resubscribe", asm_group_id=42)])
    assert EmailSuppression.objects.for_tenant(tenant).filter(reason="bounce").exists()


def test_events_move_their_email_forward_only(tenant, sendgrid_webhook):
    email = email_send(tenant=tenant, to="ana@example.com", subject="s", text="t", category="notice")
    EmailMessage.objects.for_tenant(tenant).filter(pk=email.pk).update(status="sent")

    def post(kind):
        sendgrid_webhook.post([event(tenant, kind, email_id=str(email.pk))])
        return EmailMessage.objects.for_tenant(tenant).get(pk=email.pk).status

    assert post("processed") == "processed"
    assert post("open") == "processed"
    assert post("deferred") == "deferred"
    assert post("delivered") == "delivered"
    assert post("processed") == "delivered"
    assert post("bounce") == "delivered"  # the first final status wins
    assert EmailEvent.objects.for_tenant(tenant).filter(message=email).count() == 6


def test_event_naming_another_tenants_email_does_not_touch_it(tenant, other_tenant, sendgrid_webhook):
    theirs = email_send(tenant=other_tenant, to="bo@example.com", subject="s", text="t", category="notice")
    sendgrid_webhook.post([event(tenant, "delivered", email_id=str(theirs.pk))])
    stored = EmailEvent.objects.for_tenant(tenant).get()
    assert stored.message is None
    assert EmailMessage.objects.for_tenant(other_tenant).get(pk=theirs.pk).status == "queued"


def test_many_tenants_one_batch(sendgrid_webhook):
    tenants = [TenantFactory() for _ in range(3)]
    response = sendgrid_webhook.post(
        [event(t, "unsubscribe", email=f"x{i}@example.com") for i, t in enumerate(tenants)]
    )
    assert response.json()["stored"] == 3
    for t in tenants:
        assert EmailSuppression.objects.for_tenant(t).count() == 1
