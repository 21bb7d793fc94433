"""No Twilio webhook answers a 5xx, whatever the body: hostile payloads signed exactly as Twilio
signs them (form and JSON bodies), the unsigned junk that used to reach a failing query, and a
flood of bad signatures that must not become a flood of database writes.

NULs and integer ranges only fail on PostgreSQL: run this file with DATABASE_URL pointing at one.
"""

import hashlib
import itertools
import json
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from messaging.intake.status import CALLBACK_STATUSES
from messaging.models import Message, MessageEvent
from tenants.alerts import alerts_check
from tenants.models import Alert, WebhookRejection
from tenants.rejections import FLUSH_SECONDS, webhook_rejections_flush
from tenants.selectors import webhook_rejection_list, webhook_rejections_by_tenant

INBOUND = "/webhooks/twilio/messaging/inbound/"
STATUS = "/webhooks/twilio/messaging/status/"
#: Each webhook and the fields its handler requires: drawn (hostile) in every example, so
#: every example gets past the 400 for a missing field and into the storing code.
REQUIRED = {
    INBOUND: ["MessageSid", "From", "To"],
    STATUS: ["MessageSid", "MessageStatus"],
    "/webhooks/twilio/voice/inbound/": ["CallSid", "From", "To"],
    "/webhooks/twilio/voice/gather/": ["CallSid"],
    "/webhooks/twilio/voice/status/": ["CallSid", "CallStatus"],
    "/webhooks/twilio/voice/recording/": ["RecordingSid", "CallSid"],
}
ENDPOINTS = list(REQUIRED)
FIELDS = [
    "MessageSid",
    "SmsSid",
    "MessagingServiceSid",
    "From",
    "To",
    "Body",
    "MessageStatus",
    "ErrorCode",
    "NumSegments",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "OptOutType",
    "CallSid",
    "CallStatus",
    "RecordingSid",
    "Digits",
    "Direction",
]
FUZZ = hypothesis_settings(
    max_examples=40,
    deadline=None,
    database=None,  # no example files in the checkout; failures print their reproducing example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Every text Python can send, NUL and astral planes included, short or far past any column.
hostile_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.sampled_from("\x00 \t\n+0123456789SMACabcdef"), max_size=80),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=35, max_value=3000).map(lambda n: "SM" + "a" * n),
)
extra_fields = st.dictionaries(st.text(min_size=1, max_size=20), hostile_text, max_size=4)
hostile_form = st.fixed_dictionaries({}, optional={name: hostile_text for name in FIELDS})
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
hostile_json = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=20), json_value, max_size=12)
unique_sids = (f"SM{n:032x}" for n in itertools.count(0xF00D0000))


@pytest.fixture(autouse=True)
def _no_pending_rejections():
    cache.clear()


def _sign(url: str, params: dict, token: str) -> str:
    return RequestValidator(token).compute_signature(url, params)


def post_form(client, path: str, params: dict, *, token: str, query: str = ""):
    full = path + (f"?{query}" if query else "")
    signature = _sign(settings.PUBLIC_BASE_URL + full, params, token)
    return client.post(
        full,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


def post_json(client, path: str, payload: dict, *, token: str):
    body = json.dumps(payload)
    full = f"{path}?bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signature = _sign(settings.PUBLIC_BASE_URL + full, {}, token)
    return client.post(full, body, content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature)


def post_unsigned(client, path: str, params: dict, **headers):
    """A form-encoded post, as Twilio sends, with whatever signature header is given."""
    return client.post(path, data=urlencode(params), content_type="application/x-www-form-urlencoded", **headers)


def _stored_sid(raw: str) -> str:
    return raw.replace("\x00", "\ufffd").strip()[:34]


# --- signed hostile payloads ------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@FUZZ
@given(data=st.data(), status=st.sampled_from(sorted(CALLBACK_STATUSES)), m=hostile_text)
def test_signed_hostile_form_never_5xx(client, tenant, path, data, status, m):
    required = data.draw(st.fixed_dictionaries({name: hostile_text for name in REQUIRED[path]}))
    params = {**data.draw(extra_fields), **data.draw(hostile_form), **required, "AccountSid": tenant.account_sid}
    if path == STATUS and data.draw(st.booleans()):
        params["MessageStatus"] = status  # mostly a status Twilio sends, so the callback is applied
    response = post_form(client, path, params, token=tenant.auth_token.reveal(), query=urlencode({"m": m}))
    assert response.status_code < 500, response.content
    assert response.status_code != 403  # signed like Twilio: it reached the handler


@pytest.mark.parametrize("path", ENDPOINTS)
@FUZZ
@given(data=st.data(), payload=hostile_json)
def test_signed_hostile_json_never_5xx(client, tenant, path, data, payload):
    required = data.draw(st.fixed_dictionaries({name: json_value for name in REQUIRED[path]}))
    payload = {**payload, **required, "AccountSid": tenant.account_sid}
    if path == STATUS and data.draw(st.booleans()):
        payload["MessageStatus"] = data.draw(st.sampled_from(sorted(CALLBACK_STATUSES)))
    response = post_json(client, path, payload, token=tenant.auth_token.reveal())
    assert response.status_code < 500, response.content
    assert response.status_code != 403  # signed like Twilio: it reached the handler


@FUZZ
@given(params=hostile_form, extra=extra_fields, sid=hostile_text, sender=hostile_text, body=hostile_text)
def test_signed_inbound_text_is_stored(client, tenant, params, extra, sid, sender, body):
    """Whatever else the payload holds, a signed text with a SID and numbers is kept (it may be a STOP)."""
    sid = sid if sid.strip() else next(unique_sids)
    sender = sender if sender.strip() else "+14155550100"
    params = {**extra, **params, "AccountSid": tenant.account_sid, "MessageSid": sid, "From": sender}
    params["To"] = "+14155550199"
    params["Body"] = body
    response = post_form(client, INBOUND, params, token=tenant.auth_token.reveal())
    assert response.status_code == 200, response.content
    assert Message.objects.for_tenant(tenant).filter(sid=_stored_sid(sid)).exists()


@FUZZ
@given(payload=hostile_json, body=hostile_text)
def test_signed_inbound_json_text_is_stored(client, tenant, payload, body):
    sid = next(unique_sids)
    payload = {**payload, "AccountSid": tenant.account_sid, "MessageSid": sid, "From": "+14155550100"}
    payload.update(To="+14155550199", Body=body)
    response = post_json(client, INBOUND, payload, token=tenant.auth_token.reveal())
    assert response.status_code == 200, response.content
    assert Message.objects.for_tenant(tenant).filter(sid=sid).exists()


def test_signed_stop_with_a_nul_in_every_field_is_stored_and_applied(client, tenant):
    params = {
        "AccountSid": tenant.account_sid,
        "MessageSid": "SM" + "4" * 31 + "\x00",
        "From": "+14155550100\x00",
        "To": "+14155550199\x00",
        "Body": "STOP\x00",
        "MessagingServiceSid": "MG\x00",
        "NumMedia": "\x00",
        "Extra\x00": "\x00",
    }
    response = post_form(client, INBOUND, params, token=tenant.auth_token.reveal())
    assert response.status_code == 200
    message = Message.objects.for_tenant(tenant).get(sid="SM" + "4" * 31 + "\ufffd")
    assert message.keyword == "opt_out"


def test_signed_over_long_message_sid_is_cut_and_flagged(client, tenant):
    sid = "SM" + "5" * 40
    params = {"AccountSid": tenant.account_sid, "MessageSid": sid, "From": "+14155550100", "To": "+14155550199"}
    response = post_form(client, INBOUND, {**params, "Body": "STOP"}, token=tenant.auth_token.reveal())
    assert response.status_code == 200
    message = Message.objects.for_tenant(tenant).get(sid=sid[:34])
    assert message.keyword == "opt_out"
    assert MessageEvent.objects.for_tenant(tenant).get(message=message).payload["_truncated"] == ["MessageSid"]


def test_signed_over_long_numbers_are_cut_and_flagged(client, tenant):
    params = {"AccountSid": tenant.account_sid, "MessageSid": "SM" + "6" * 32, "From": "x" * 300, "To": "y" * 40}
    response = post_form(client, INBOUND, {**params, "Body": "hello"}, token=tenant.auth_token.reveal())
    assert response.status_code == 200
    message = Message.objects.for_tenant(tenant).get(sid="SM" + "6" * 32)
    assert len(message.from_number) <= 32 and len(message.to_number) <= 32
    assert MessageEvent.objects.for_tenant(tenant).get(message=message).payload["_truncated"] == ["From", "To"]


@pytest.mark.parametrize("code", ["2147483648", "99999999999999999999", "9" * 5000])
def test_signed_error_code_out_of_range_is_dropped_and_flagged(client, tenant, code):
    params = {"AccountSid": tenant.account_sid, "MessageSid": "SM" + "7" * 32, "MessageStatus": "undelivered"}
    response = post_form(client, STATUS, {**params, "ErrorCode": code}, token=tenant.auth_token.reveal())
    assert response.status_code == 204
    message = Message.objects.for_tenant(tenant).get(sid="SM" + "7" * 32)
    assert message.status == "undelivered" and message.error_code is None
    event = MessageEvent.objects.for_tenant(tenant).get(message=message)
    assert event.error_code is None
    if code == "2147483648":
        assert event.payload["_dropped"] == ["ErrorCode"]


def test_signed_status_callback_with_huge_portal_id(client, tenant):
    params = {"AccountSid": tenant.account_sid, "MessageSid": "SM" + "8" * 32, "MessageStatus": "sent"}
    for m in ["9" * 30, "-1", "\x00", "1e9"]:
        response = post_form(client, STATUS, params, token=tenant.auth_token.reveal(), query=urlencode({"m": m}))
        assert response.status_code == 204


# --- unsigned junk ------------------------------------------------------------------------------


def _tenant_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if '"tenants_tenant"' in q["sql"]]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "account_sid",
    [
        "\x00",
        "AC\x00" + "0" * 31,
        "AC" + "0" * 33,
        "AC" + "G" * 32,
        "ac" + "0" * 32,
        "x" * 5000,
        "AC" + "0" * 32 + "\n",
    ],
)
def test_malformed_account_sid_refused_before_any_tenant_query(client, db, path, account_sid):
    with CaptureQueriesContext(connection) as ctx:
        response = post_unsigned(client, path, {"AccountSid": account_sid, "MessageSid": "SM" + "1" * 32})
    assert response.status_code == 403
    assert _tenant_queries(ctx.captured_queries) == []
    webhook_rejections_flush(tenant_id=None)
    assert WebhookRejection.objects.get(tenant=None).reason == "unknown_account_sid"


@pytest.mark.parametrize("path", ENDPOINTS)
def test_json_without_body_sha256_is_400(client, tenant, path):
    body = json.dumps({"AccountSid": tenant.account_sid, "MessageSid": "SM" + "1" * 32})
    signature = _sign(settings.PUBLIC_BASE_URL + path, {}, tenant.auth_token.reveal())
    response = client.post(path, body, content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 400
    assert b"bodySHA256" in response.content


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "body,content_type",
    [
        (b"AccountSid=%00", "application/x-www-form-urlencoded"),
        (b"AccountSid=%FF%FE", "application/x-www-form-urlencoded"),
        (b'{"AccountSid": null}', "application/json"),
        (b'{"AccountSid": "\\u0000"}', "application/json"),
        (b"\x00" * 100, "application/json"),
        (b"&&&===&", "application/x-www-form-urlencoded"),
        (b"a=" + b"%" * 1000, "application/x-www-form-urlencoded"),
    ],
)
def test_unsigned_junk_bodies_are_4xx(client, db, path, body, content_type):
    response = client.generic("POST", path, body, content_type=content_type)
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("path", ENDPOINTS)
def test_bad_signature_with_junk_headers_is_403(client, tenant, path):
    params = {"AccountSid": tenant.account_sid, "MessageSid": "SM" + "1" * 32}
    for signature in ["é" * 28, "\t", "x" * 5000]:
        response = post_unsigned(client, path, params, HTTP_X_TWILIO_SIGNATURE=signature)
        assert response.status_code == 403


# --- the rejection counter under a flood --------------------------------------------------------


def _counter_writes(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if '"tenants_webhookrejection"' in q["sql"] and q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE"))
    ]


def test_a_flood_of_bad_signatures_writes_the_counter_once_per_interval(client, tenant, tenant_admin):
    params = {"AccountSid": tenant.account_sid, "MessageSid": "SM" + "1" * 32, "MessageStatus": "sent"}
    with CaptureQueriesContext(connection) as ctx:
        for _ in range(100):
            assert post_unsigned(client, STATUS, params, HTTP_X_TWILIO_SIGNATURE="forged").status_code == 403
            assert post_unsigned(client, STATUS, {"AccountSid": "AC" + "e" * 32}).status_code == 403
    # the first refusal per tenant flushes; the other 99 wait for the interval
    assert len(_counter_writes(ctx.captured_queries)) <= 2 * 2
    assert FLUSH_SECONDS >= 10
    # ...but every reader already sees all of them
    assert webhook_rejections_by_tenant(days=7) == {tenant.id: 100, None: 100}
    listed = webhook_rejection_list(tenant=tenant)
    assert [(r.reason, r.count) for r in listed] == [("invalid_signature", 100)]
    client.force_login(tenant_admin)
    page = client.get(reverse("tenant_settings", kwargs={"tenant_slug": tenant.slug}))
    assert page.status_code == 200
    assert "Invalid signature" in page.content.decode()
    # and a flush stores them exactly once
    webhook_rejections_flush(tenant_id=tenant.id)
    webhook_rejections_flush(tenant_id=tenant.id)
    assert WebhookRejection.objects.get(tenant=tenant).count == 100
    assert webhook_rejections_by_tenant(days=7)[tenant.id] == 100


def test_the_alert_check_sees_pending_refusals(client, tenant):
    params = {"AccountSid": tenant.account_sid, "MessageSid": "SM" + "1" * 32, "MessageStatus": "sent"}
    for _ in range(12):
        post_unsigned(client, STATUS, params, HTTP_X_TWILIO_SIGNATURE="forged")
    alerts_check()
    assert Alert.objects.for_tenant(tenant).filter(kind="signature_failures", cleared_at__isnull=True).exists()


def test_without_a_reachable_cache_refusals_are_stored_directly(client, tenant, monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "add", unreachable)
    params = {"AccountSid": tenant.account_sid, "MessageSid": "SM" + "1" * 32, "MessageStatus": "sent"}
    for _ in range(3):
        assert post_unsigned(client, STATUS, params, HTTP_X_TWILIO_SIGNATURE="forged").status_code == 403
    assert WebhookRejection.objects.get(tenant=tenant).count == 3
