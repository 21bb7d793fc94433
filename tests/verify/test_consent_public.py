"""The public double opt-in page: evidence, re-consent after an opt-out, email codes that prove
only the email, the honeypot, CSRF, and the same answers whatever the tenant knows."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from messaging.ledgers.selectors import opt_out_latest
from messaging.ledgers.services import opt_out_record
from messaging.models import ConsentEvent, Message, OptOutEvent
from tenants.models import AuditEvent
from tests.verify.support import sms_to, time_passes, verify_codes
from verify.consent.public import Evidence, consent_code_confirm, consent_code_request, consent_form_public
from verify.models import Verification

PHONE = "+14155550177"
URL = "/c/acme/offers/"
UA = "Mozilla/5.0 (consent-test)"


def start(client, phone=PHONE, ip="203.0.113.9", **extra):
    data = {"action": "start", "phone": phone, "agree": "on", "website": "", **extra}
    return client.post(URL, data, HTTP_USER_AGENT=UA, REMOTE_ADDR=ip)


def confirm(client, code):
    return client.post(URL, {"action": "check", "code": code}, HTTP_USER_AGENT=UA, REMOTE_ADDR="203.0.113.9")


def latest_code(sandbox, to=PHONE) -> str:
    return verify_codes(sandbox, to)[0]["code"]


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run on-commit hooks (the delivery task, eager) as each request's transaction would."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def test_double_opt_in_records_consent_with_evidence_and_confirms(client, consent_form, sandbox, on_commit):
    assert client.get(URL).status_code == 200
    assert start(client).status_code == 302
    page = client.get(URL)
    assert b"+1******0177" in page.content
    response = on_commit(confirm, client, latest_code(sandbox))
    assert response.status_code == 200 and b"subscribed" in response.content
    event = ConsentEvent.objects.for_tenant(consent_form.tenant).get(phone=PHONE)
    verification = Verification.objects.for_tenant(consent_form.tenant).get(to=PHONE)
    assert event.method == "double_opt_in" and event.purpose == "marketing" and event.action == "granted"
    assert event.ip_address == "203.0.113.9" and event.user_agent == UA
    assert event.source == "http://127.0.0.1:9/c/acme/offers/"
    assert event.disclosure.text == consent_form.current_version.disclosure.text
    assert event.disclosure.version == "offers v1"
    assert verification.sid in event.note and "v1" in event.note
    assert verification.consent_event_id == event.pk and verification.status == "approved"
    [confirmation] = Message.objects.for_tenant(consent_form.tenant).filter(to_number=PHONE)
    assert "Acme" in confirmation.body and "Up to 4 msgs/month" in confirmation.body
    assert (
        "Msg & data rates may apply" in confirmation.body
        and "HELP" in confirmation.body
        and "STOP" in confirmation.body
    )
    assert any(m["body"] == confirmation.body for m in sms_to(sandbox, PHONE))
    audit = AuditEvent.objects.get(action="consent.double_opt_in")
    assert audit.tenant == consent_form.tenant and audit.actor is None and audit.ip_address == "203.0.113.9"
    assert audit.target == "+1******0177" and audit.details["consent_event"] == event.pk


def test_a_number_that_opted_out_re_consents_in_both_ledgers(client, consent_form, sandbox, on_commit):
    tenant = consent_form.tenant
    opt_out_record(tenant=tenant, phone=PHONE, source="keyword", keyword="STOP")
    start(client)
    confirm(client, latest_code(sandbox))
    latest = opt_out_latest(tenant=tenant, phone=PHONE)
    assert latest.action == OptOutEvent.Action.OPT_IN and latest.source == "double_opt_in"
    assert (
        ConsentEvent.objects.for_tenant(tenant).filter(phone=PHONE, method="double_opt_in", action="granted").exists()
    )


def test_the_page_answers_the_same_for_a_known_and_an_unknown_number(client, consent_form, sandbox, on_commit):
    known, unknown = "+14155550178", "+14155550179"
    opt_out_record(tenant=consent_form.tenant, phone=known, source="keyword", keyword="STOP")
    pages = []
    for phone, ip in ((known, "203.0.113.10"), (unknown, "203.0.113.11")):
        other = Client()
        response = start(other, phone=phone, ip=ip)
        page = other.get(URL).content.replace(phone[-4:].encode(), b"")
        pages.append((response.status_code, response["Location"], re.sub(rb'value="[^"]{40,}"', b"", page)))
        assert verify_codes(sandbox, phone)  # a code went to both
    assert pages[0] == pages[1]


def test_email_code_proves_the_email_only(client, consent_form, sandbox, on_commit):
    start(client, email="pat@example.com")
    client.post(URL, {"action": "resend", "channel": "email"})
    response = confirm(client, latest_code(sandbox, "pat@example.com"))
    assert response.status_code == 200 and b"email address is confirmed" in response.content
    assert not ConsentEvent.objects.for_tenant(consent_form.tenant).exists()
    assert Verification.objects.for_tenant(consent_form.tenant).get(to="pat@example.com").status == "approved"


def test_honeypot_gets_the_same_answer_and_no_code(client, consent_form, sandbox):
    response = start(client, website="http://spam.example")
    assert response.status_code == 302 and b"+1******0177" in client.get(URL).content
    assert verify_codes(sandbox, PHONE) == []
    assert confirm(client, "123456").status_code == 400


def test_csrf_is_enforced(consent_form):
    strict = Client(enforce_csrf_checks=True)
    assert strict.post(URL, {"action": "start", "phone": PHONE, "agree": "on"}).status_code == 403


def test_unpublished_or_unknown_forms_are_404(client, consent_form):
    assert client.get("/c/acme/nope/").status_code == 404
    assert client.get("/c/nope/offers/").status_code == 404


def test_call_instead_resends_within_the_same_verification(client, consent_form, sandbox):
    start(client)
    time_passes(consent_form.tenant, 61)
    assert client.post(URL, {"action": "resend", "channel": "call"}, REMOTE_ADDR="203.0.113.9").status_code == 302
    assert b"by phone call" in client.get(URL).content
    issued = verify_codes(sandbox, PHONE)
    assert [c["channel"] for c in issued] == ["call", "sms"] and issued[0]["verification_sid"] == issued[1][
        "verification_sid"
    ]
    verification = Verification.objects.for_tenant(consent_form.tenant).get()
    assert (verification.channel, verification.sends) == ("call", 2)


def test_email_first_then_the_phone_records_consent_and_a_receipt(client, consent_form, sandbox, on_commit):
    start(client, email="pat@example.com")
    time_passes(consent_form.tenant, 61)
    client.post(URL, {"action": "resend", "channel": "email"}, REMOTE_ADDR="203.0.113.9")
    email_only = confirm(client, latest_code(sandbox, "pat@example.com"))
    assert b"proves the address only" in email_only.content
    assert not ConsentEvent.objects.for_tenant(consent_form.tenant).exists()
    time_passes(consent_form.tenant, 61)
    client.post(URL, {"action": "resend", "channel": "sms"}, REMOTE_ADDR="203.0.113.9")
    done = on_commit(confirm, client, latest_code(sandbox))
    assert b"subscribed" in done.content and b"receipt of your consent is on its way" in done.content
    assert ConsentEvent.objects.for_tenant(consent_form.tenant).get().phone == PHONE
    assert client.get(URL).content.count(b'data-consent-step="start"') == 1  # the flow is over


def test_an_approval_records_consent_once(consent_form, sandbox, on_commit):
    public = consent_form_public(tenant_slug="acme", form_slug="offers")
    sent = consent_code_request(public=public, phone=PHONE, channel="sms", client_ip="203.0.113.40")
    evidence = Evidence(ip="203.0.113.40", user_agent=UA, form_url="https://portal.example/c/acme/offers/")
    first = on_commit(
        consent_code_confirm, public=public, verification_id=sent.id, code=latest_code(sandbox), evidence=evidence
    )
    again = on_commit(
        consent_code_confirm, public=public, verification_id=sent.id, code=latest_code(sandbox), evidence=evidence
    )
    assert first[1] == again[1] and ConsentEvent.objects.for_tenant(consent_form.tenant).count() == 1
    assert Message.objects.for_tenant(consent_form.tenant).filter(to_number=PHONE).count() == 1  # one confirmation
