"""Abuse limits on the public form (per number AND per client IP: 60 s between sends, 5 sends
an hour, 5 code checks per verification) and Verify's refusals as clear messages; receipts by
email once the address is proven."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from messaging.models import ConsentEvent
from tests.verify.support import add_fault, time_passes, verify_codes
from verify.models import EmailMessage, Verification, VerifyBreaker

URL = "/c/acme/offers/"
PHONE = "+14155550191"


def start(client, phone=PHONE, ip="198.51.100.1", **extra):
    data = {"action": "start", "phone": phone, "agree": "on", **extra}
    return client.post(URL, data, REMOTE_ADDR=ip)


def resend(client, channel="sms", ip="198.51.100.1"):
    return client.post(URL, {"action": "resend", "channel": channel}, REMOTE_ADDR=ip)


def test_sixty_seconds_between_sends_per_number(consent_form, sandbox):
    assert start(Client(), ip="198.51.100.1").status_code == 302
    refused = start(Client(), ip="198.51.100.2")  # same number, another address
    assert refused.status_code == 429 and re.search(rb"Wait (59|60) seconds", refused.content)
    assert len(verify_codes(sandbox, PHONE)) == 1


def test_sixty_seconds_between_sends_per_client_ip(consent_form, sandbox):
    assert start(Client(), phone="+14155550192").status_code == 302
    refused = start(Client(), phone="+14155550193")  # another number, same address
    assert refused.status_code == 429 and b"seconds before asking for another" in refused.content
    assert verify_codes(sandbox, "+14155550193") == []


def test_five_sends_an_hour_per_number(consent_form, sandbox):
    person = Client()
    assert start(person, ip="198.51.100.1").status_code == 302
    for n in range(4):
        time_passes(consent_form.tenant, 61)
        assert resend(person, ip=f"198.51.100.{10 + n}").status_code == 302
    time_passes(consent_form.tenant, 61)
    refused = resend(person, ip="198.51.100.30")
    assert refused.status_code == 429 and b"Too many codes were requested. Try again in" in refused.content
    assert Verification.objects.for_tenant(consent_form.tenant).get().sends == 5


def test_five_sends_an_hour_per_client_ip(consent_form, sandbox):
    for n in range(5):
        assert start(Client(), phone=f"+1415555020{n}").status_code == 302
        time_passes(consent_form.tenant, 61)
    refused = start(Client(), phone="+14155550209")
    assert refused.status_code == 429 and b"Try again in" in refused.content
    assert verify_codes(sandbox, "+14155550209") == []


def test_five_code_checks_per_verification(consent_form, sandbox):
    person = Client()
    start(person)
    right = verify_codes(sandbox, PHONE)[0]["code"]
    wrong = "000000" if right != "000000" else "111111"
    for left in (4, 3, 2, 1):
        page = person.post(URL, {"action": "check", "code": wrong})
        assert page.status_code == 400 and f"{left} tr".encode() in page.content
    assert b"Too many wrong codes" in person.post(URL, {"action": "check", "code": wrong}).content
    # The sixth check is refused before Verify is asked, even with the right code.
    sixth = person.post(URL, {"action": "check", "code": right})
    assert b"Too many wrong codes" in sixth.content
    verification = Verification.objects.for_tenant(consent_form.tenant).get()
    assert verification.attempts == 5 and verification.status == "max_attempts_reached"
    assert not ConsentEvent.objects.for_tenant(consent_form.tenant).exists()


@pytest.mark.parametrize(
    ("status", "code", "says"),
    [
        (400, 60200, b"doesn&#x27;t look right"),
        (429, 60203, b"Too many codes were sent to this number"),
        (429, 60212, b"Too many requests for this number at once"),
        (429, 20429, b"receiving too many requests right now"),
    ],
)
def test_verify_send_refusals_are_clear_messages(consent_form, sandbox, status, code, says):
    add_fault(sandbox, status=status, code=code, path_contains="/Verifications", count=1)
    page = start(Client())
    assert page.status_code == 400 and says in page.content
    assert not VerifyBreaker.objects.exclude(state="closed").exists()  # our request's fault, not Verify's


def test_verify_60202_on_a_check_is_a_clear_message(consent_form, sandbox):
    person = Client()
    start(person)
    add_fault(sandbox, status=429, code=60202, path_contains="/VerificationCheck", count=1)
    page = person.post(URL, {"action": "check", "code": "123456"})
    assert page.status_code == 400 and b"Too many wrong codes" in page.content
    assert Verification.objects.for_tenant(consent_form.tenant).get().status == "max_attempts_reached"
    assert not VerifyBreaker.objects.exclude(state="closed").exists()


def test_receipt_by_email_once_the_address_is_proven(consent_form, sandbox, django_capture_on_commit_callbacks):
    person = Client()
    start(person, email="pat@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        done = person.post(URL, {"action": "check", "code": verify_codes(sandbox, PHONE)[0]["code"]})
    assert b"subscribed" in done.content and b"Email me a receipt" in done.content
    assert not EmailMessage.objects.for_tenant(consent_form.tenant).exists()  # address not proven yet
    time_passes(consent_form.tenant, 61)
    assert resend(person, channel="email").status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        proven = person.post(URL, {"action": "check", "code": verify_codes(sandbox, "pat@example.com")[0]["code"]})
    assert b"receipt of your consent is on its way" in proven.content
    receipt = EmailMessage.objects.for_tenant(consent_form.tenant).get()
    assert receipt.category == "consent_receipt" and receipt.to_email == "pat@example.com"
    assert consent_form.current_version.disclosure.text in receipt.text and "+1******0191" in receipt.text
    assert ConsentEvent.objects.for_tenant(consent_form.tenant).count() == 1  # the email added no consent
