"""The signed-webhook gateway, signed exactly as Twilio signs (RequestValidator.compute_signature)."""

import hashlib
import json
from urllib.parse import urlencode

import pytest
from django import db
from django.core.cache import cache
from django.test import override_settings
from twilio.request_validator import HMAC_SHA256, RequestValidator

from messaging.models import Message
from tenants import webhooks
from tenants.models import WebhookRejection
from tenants.rejections import webhook_rejections_flush

INBOUND = "/webhooks/twilio/messaging/inbound/"
ALL_TWILIO_ENDPOINTS = [
    (
        "/webhooks/twilio/messaging/inbound/",
        {"MessageSid": "SM" + "1" * 32, "From": "+14155550100", "To": "+14155550199", "Body": "hi"},
    ),
    (
        "/webhooks/twilio/messaging/status/",
        {"MessageSid": "SM" + "2" * 32, "MessageStatus": "sent", "From": "+14155550199", "To": "+14155550100"},
    ),
    (
        "/webhooks/twilio/voice/inbound/",
        {"CallSid": "CA" + "1" * 32, "From": "+14155550100", "To": "+14155550199", "CallStatus": "ringing"},
    ),
    ("/webhooks/twilio/voice/status/", {"CallSid": "CA" + "1" * 32, "CallStatus": "completed"}),
    (
        "/webhooks/twilio/voice/recording/",
        {"CallSid": "CA" + "1" * 32, "RecordingSid": "RE" + "1" * 32, "RecordingStatus": "completed"},
    ),
]


def params_for(tenant, base):
    return {"AccountSid": tenant.account_sid, **base}


@pytest.fixture(autouse=True)
def _no_pending_rejections():
    """Rejection counts wait in the shared cache (`tenants.rejections`); start each test at 0."""
    cache.clear()


def rejections(tenant=None, reason=None):
    """What support sees: stored counts plus those still pending in the cache."""
    webhook_rejections_flush(tenant_id=tenant.id if tenant else None)
    qs = WebhookRejection.objects.filter(tenant=tenant)
    if reason:
        qs = qs.filter(reason=reason)
    return sum(r.count for r in qs)


@pytest.mark.parametrize("path,base", ALL_TWILIO_ENDPOINTS)
def test_valid_signature_accepted_on_every_endpoint(twilio_webhook, tenant, path, base):
    response = twilio_webhook.post(path, params_for(tenant, base), token=tenant.auth_token.reveal())
    assert response.status_code in (200, 204), response.content


@pytest.mark.parametrize("path", [p for p, _ in ALL_TWILIO_ENDPOINTS] + ["/webhooks/sendgrid/events/"])
def test_only_post(client, path):
    assert client.get(path).status_code == 405
    assert client.put(path).status_code == 405


@pytest.mark.parametrize("path,base", ALL_TWILIO_ENDPOINTS)
def test_invalid_signature_403(twilio_webhook, tenant, path, base):
    response = twilio_webhook.post(path, params_for(tenant, base), token="0" * 32)
    assert response.status_code == 403
    assert rejections(tenant, "invalid_signature") == 1


def test_tampered_param_rejected(client, tenant):
    params = params_for(tenant, ALL_TWILIO_ENDPOINTS[0][1])
    sig = RequestValidator(tenant.auth_token.reveal()).compute_signature("http://127.0.0.1:8000" + INBOUND, params)
    params["Body"] = "tampered"
    response = client.post(
        INBOUND, urlencode(params), content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=sig
    )
    assert response.status_code == 403


def test_signed_with_other_tenants_token_rejected(twilio_webhook, tenant, other_tenant, caplog):
    response = twilio_webhook.post(
        INBOUND, params_for(tenant, ALL_TWILIO_ENDPOINTS[0][1]), token=other_tenant.auth_token.reveal()
    )
    assert response.status_code == 403
    assert rejections(tenant, "invalid_signature") == 1
    # the structured log line names the event and never carries a token
    record = next(r for r in caplog.records if r.getMessage() == "twilio.webhook.invalid_signature")
    assert record.tenant == "acme"
    for secret in (tenant.auth_token.reveal(), other_tenant.auth_token.reveal()):
        assert secret not in caplog.text


def test_missing_signature_header(client, tenant):
    response = client.post(
        INBOUND,
        urlencode(params_for(tenant, ALL_TWILIO_ENDPOINTS[0][1])),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 403
    assert rejections(tenant, "missing_signature") == 1


def test_missing_account_sid(twilio_webhook, tenant):
    response = twilio_webhook.post(INBOUND, ALL_TWILIO_ENDPOINTS[0][1], token=tenant.auth_token.reveal())
    assert response.status_code == 403
    assert rejections(None, "missing_account_sid") == 1


def test_unknown_account_sid(twilio_webhook, db):
    params = {"AccountSid": "AC" + "f" * 32, **ALL_TWILIO_ENDPOINTS[0][1]}
    response = twilio_webhook.post(INBOUND, params, token="f" * 32)
    assert response.status_code == 403
    assert rejections(None, "unknown_account_sid") == 1


def test_rejection_counter_accumulates_per_day(twilio_webhook, tenant):
    for _ in range(3):
        twilio_webhook.post(INBOUND, params_for(tenant, ALL_TWILIO_ENDPOINTS[0][1]), token="0" * 32)
    assert WebhookRejection.objects.filter(tenant=tenant).count() == 1
    assert rejections(tenant) == 3


@override_settings(PUBLIC_BASE_URL="https://portal.example.com")
def test_behind_tls_proxy_validates_against_public_https_url(twilio_webhook, tenant):
    """Django sees http://testserver; Twilio signed https://portal.example.com/…"""
    params = params_for(tenant, ALL_TWILIO_ENDPOINTS[0][1])
    ok = twilio_webhook.post(
        INBOUND,
        params,
        token=tenant.auth_token.reveal(),
        url="https://portal.example.com" + INBOUND,
        headers={"X-Forwarded-Proto": "https"},
    )
    assert ok.status_code == 200
    http_signed = twilio_webhook.post(
        INBOUND, params, token=tenant.auth_token.reveal(), url="http://portal.example.com" + INBOUND
    )
    assert http_signed.status_code == 403


@override_settings(PUBLIC_BASE_URL="https://portal.example.com")
def test_standard_port_variant_accepted(twilio_webhook, tenant):
    params = params_for(tenant, ALL_TWILIO_ENDPOINTS[0][1])
    response = twilio_webhook.post(
        INBOUND, params, token=tenant.auth_token.reveal(), url="https://portal.example.com:443" + INBOUND
    )
    assert response.status_code == 200


def test_query_string_is_part_of_signed_url(twilio_webhook, tenant, client):
    params = params_for(tenant, ALL_TWILIO_ENDPOINTS[1][1])
    path = "/webhooks/twilio/messaging/status/?m=42"
    ok = twilio_webhook.post(path, params, token=tenant.auth_token.reveal())
    assert ok.status_code == 204
    # the same signature without the query string does not validate
    sig = RequestValidator(tenant.auth_token.reveal()).compute_signature(
        "http://127.0.0.1:8000/webhooks/twilio/messaging/status/", params
    )
    bad = client.post(
        path, urlencode(params), content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=sig
    )
    assert bad.status_code == 403


def test_hmac_sha256_where_configured(twilio_webhook, tenant):
    tenant.webhook_signing_key = "whsec-shared-key-0123456789abcdef"
    tenant.save()
    header = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    params = params_for(tenant, ALL_TWILIO_ENDPOINTS[0][1])
    ok = twilio_webhook.post(
        INBOUND, params, token="whsec-shared-key-0123456789abcdef", headers=header, algorithm=HMAC_SHA256
    )
    assert ok.status_code == 200
    wrong_key = twilio_webhook.post(INBOUND, params, token="another-key", headers=header, algorithm=HMAC_SHA256)
    assert wrong_key.status_code == 403
    # the auth token under the SHA-256 header is not the shared key: rejected
    token_as_key = twilio_webhook.post(
        INBOUND, params, token=tenant.auth_token.reveal(), headers=header, algorithm=HMAC_SHA256
    )
    assert token_as_key.status_code == 403


def test_hmac_sha256_announced_without_configured_key_rejected(twilio_webhook, tenant):
    header = {"X-Twilio-Webhooks-Signature-Settings": "key=k,algorithm=HMAC_SHA256"}
    response = twilio_webhook.post(
        INBOUND,
        params_for(tenant, ALL_TWILIO_ENDPOINTS[0][1]),
        token=tenant.auth_token.reveal(),
        headers=header,
        algorithm=HMAC_SHA256,
    )
    assert response.status_code == 403


def test_json_body_with_body_sha256(client, tenant):
    body = json.dumps({"AccountSid": tenant.account_sid, "MessageSid": "SM" + "3" * 32, "MessageStatus": "sent"})
    path = f"/webhooks/twilio/messaging/status/?bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    sig = RequestValidator(tenant.auth_token.reveal()).compute_signature("http://127.0.0.1:8000" + path, {})
    ok = client.post(path, body, content_type="application/json", HTTP_X_TWILIO_SIGNATURE=sig)
    assert ok.status_code == 204
    tampered = client.post(
        path, body.replace("sent", "delivered"), content_type="application/json", HTTP_X_TWILIO_SIGNATURE=sig
    )
    assert tampered.status_code == 403


@pytest.mark.parametrize(
    "body,content_type",
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
        (b"AccountSid=AC1", "text/plain"),
        (b"", ""),
    ],
)
def test_malformed_bodies_are_400(client, db, body, content_type):
    response = client.generic("POST", INBOUND, body, content_type=content_type)
    assert response.status_code == 400
    assert WebhookRejection.objects.count() == 0


def test_oversized_body_is_400(client, db):
    body = "AccountSid=AC" + "0" * 32 + "&Body=" + "x" * 70_000
    response = client.post(INBOUND, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


def test_signed_but_missing_required_fields_is_400(twilio_webhook, tenant):
    response = twilio_webhook.post(INBOUND, {"AccountSid": tenant.account_sid}, token=tenant.auth_token.reveal())
    assert response.status_code == 400
    assert b"MessageSid" in response.content


@pytest.mark.parametrize("status", ["suspended", "closed"])
def test_suspended_or_closed_tenant_callbacks_still_accepted(twilio_webhook, tenant, status):
    tenant.status = status
    tenant.save()
    response = twilio_webhook.post(
        ALL_TWILIO_ENDPOINTS[1][0], params_for(tenant, ALL_TWILIO_ENDPOINTS[1][1]), token=tenant.auth_token.reveal()
    )
    assert response.status_code == 204


def test_sendgrid_unsigned_rejected(client, db):
    response = client.post("/webhooks/sendgrid/events/", "[]", content_type="application/json")
    assert response.status_code == 403


@pytest.mark.parametrize("path,base", ALL_TWILIO_ENDPOINTS)
@pytest.mark.parametrize("error", ["OperationalError", "InterfaceError"])
def test_an_unreachable_database_answers_503_not_500(twilio_webhook, tenant, path, base, error, monkeypatch):
    """The database-cut drill (tests/messaging/test_drill_db_cut.py) in miniature: the tenant
    lookup is the first query, and it finds no server."""

    def unreachable(*args, **kwargs):
        raise getattr(db, error)("connection to server at 127.0.0.1 failed")

    monkeypatch.setattr(webhooks.Tenant.objects, "filter", unreachable)
    response = twilio_webhook.post(path, params_for(tenant, base), token=tenant.auth_token.reveal())
    assert response.status_code == 503, response.content


def _request_starts():
    """What Django's request_started does to a held connection (the test client skips it):
    the next query is to be preceded by the CONN_HEALTH_CHECKS `SELECT 1`."""
    db.connection.close_if_unusable_or_obsolete()


@pytest.mark.django_db(transaction=True)
def test_webhooks_skip_the_per_request_health_check_query(postgresql, twilio_webhook, tenant, monkeypatch):
    """The health check is half a status callback's round trips; webhooks defer it to a failure."""
    path, base = ALL_TWILIO_ENDPOINTS[1]
    assert twilio_webhook.post(path, params_for(tenant, base), token=tenant.auth_token.reveal()).status_code == 204
    checks = []
    real_is_usable = db.connection.is_usable
    monkeypatch.setattr(db.connection, "is_usable", lambda: checks.append(1) or real_is_usable())
    _request_starts()
    assert db.connection.health_check_enabled and not db.connection.health_check_done
    assert twilio_webhook.post(path, params_for(tenant, base), token=tenant.auth_token.reveal()).status_code == 204
    assert checks == []


@pytest.mark.django_db(transaction=True)
def test_a_connection_broken_between_webhooks_is_replaced_and_the_webhook_stored(postgresql, twilio_webhook, tenant):
    """A database restart between two requests ends the held connection: without the health
    check the webhook's first statement finds it broken, and the gateway runs it again on a new
    connection instead of answering 503 (Twilio does not retry a 5xx)."""
    path, base = ALL_TWILIO_ENDPOINTS[0]
    first = {**base, "MessageSid": "SM" + "a" * 32}
    assert twilio_webhook.post(path, params_for(tenant, first), token=tenant.auth_token.reveal()).status_code == 200
    held_pid = db.connection.connection.info.backend_pid
    killer = db.connection.get_new_connection(db.connection.get_connection_params())
    try:
        killer.execute("SELECT pg_terminate_backend(%s)", [held_pid])
    finally:
        killer.close()
    _request_starts()
    second = {**base, "MessageSid": "SM" + "b" * 32}
    response = twilio_webhook.post(path, params_for(tenant, second), token=tenant.auth_token.reveal())
    assert response.status_code == 200, response.content
    assert db.connection.connection.info.backend_pid != held_pid
    assert Message.all_tenants.filter(tenant=tenant, sid__in=[first["MessageSid"], second["MessageSid"]]).count() == 2
