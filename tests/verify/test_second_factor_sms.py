"""Codes by text message, through the platform's own Twilio account and Verify service
(`verify.codes` with tenant=None), against the local sandbox: enrolling a number from the real
pages, signing in with a texted code, staff choosing it when forced to enrol, and the code still
arriving by Programmable Messaging while Verify is down."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from tenants.models import AuditEvent
from tests.tenants.factories import PASSWORD, UserFactory
from tests.verify.support import add_fault, sms_to, verify_codes
from verify.models import SmsDevice, StaffVerification, StaffVerificationSend, Verification, VerifyBreaker

pytestmark = pytest.mark.real_second_factor

PHONE = "+14155550177"
ENROL_SMS = "/accounts/second-factor/enrol/sms/"
VERIFY = "/accounts/second-factor/verify/"


def sign_in(client, user):
    return client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}, follow=True)


def last_code(sandbox, to: str = PHONE) -> str:
    return verify_codes(sandbox, to)[0]["code"]


def a_minute_passes() -> None:
    """The code API allows one send a minute per number: move the send log back past it."""
    StaffVerificationSend.objects.update(sent_at=timezone.now() - timedelta(seconds=61))


def enrol_sms(client, sandbox) -> list[str]:
    asked = client.post(ENROL_SMS, {"number": PHONE})
    assert asked.status_code == 200 and "We texted a code to <strong>+1******0177</strong>" in asked.content.decode()
    done = client.post(ENROL_SMS, {"code": last_code(sandbox)})
    assert done.status_code == 200 and "shown only now" in done.content.decode()
    return re.findall(r"<li>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</li>", done.content.decode())


def test_a_tenant_admin_turns_on_text_codes_and_signs_in_with_one(
    client, tenant, tenant_admin, sandbox, sandbox_settings
):
    sign_in(client, tenant_admin)
    refused = client.post(ENROL_SMS, {"number": "4155550177"})
    assert "has no country code" in refused.content.decode()
    assert len(enrol_sms(client, sandbox)) == 10
    event = AuditEvent.objects.get(action="second_factor.enrolled")
    assert (event.target, event.details) == (
        tenant_admin.username,
        {"method": "sms", "number": "+1******0177", "replaced": False, "recovery_codes": 10},
    )
    # The platform's verifications, none in a tenant's log.
    assert StaffVerification.objects.filter(to=PHONE, purpose="second_factor", status="approved").count() == 1
    assert not Verification.all_tenants.exists()

    client.post("/accounts/logout/")
    landed = sign_in(client, tenant_admin)
    assert urlsplit(landed.redirect_chain[-1][0]).path == VERIFY
    assert "Text me a code at +1******0177" in landed.content.decode()
    # The enrolment's text went a moment ago: the code API's limits refuse another, clearly.
    again = client.post(VERIFY + "send/", follow=True)
    assert "seconds before asking for another" in again.content.decode()
    a_minute_passes()
    texted = client.post(VERIFY + "send/", {"next": f"/t/{tenant.slug}/"}, follow=True)
    assert "We texted a code to +1******0177" in texted.content.decode()
    wrong = client.post(VERIFY, {"code": "000000" if last_code(sandbox) != "000000" else "111111"})
    assert "That code is not right" in wrong.content.decode()
    right = client.post(VERIFY, {"code": last_code(sandbox), "next": f"/t/{tenant.slug}/"})
    assert right.status_code == 302 and right["Location"] == f"/t/{tenant.slug}/"


def test_support_staff_may_choose_text_codes_when_forced_to_enrol(client, db, sandbox, sandbox_settings):
    support = UserFactory(username="sid-support", support=True)
    landed = sign_in(client, support)
    assert urlsplit(landed.redirect_chain[-1][0]).path == "/accounts/second-factor/enrol/"
    assert ENROL_SMS in landed.content.decode()
    assert client.get(ENROL_SMS).status_code == 200  # the enrol step's own pages are open
    enrol_sms(client, sandbox)
    assert client.get("/support/").status_code == 200
    assert SmsDevice.objects.get(user=support).confirmed


def test_codes_still_arrive_while_verify_is_down(client, tenant_admin, sandbox, sandbox_settings):
    sign_in(client, tenant_admin)
    enrol_sms(client, sandbox)
    client.post("/accounts/logout/")
    sign_in(client, tenant_admin)

    sandbox_settings.VERIFY_PLATFORM_SMS_SENDER = "+15005550006"
    sandbox_settings.TWILIO_HTTP_TIMEOUT = 1.0
    add_fault(sandbox, kind="503", path_contains="/Verifications", count=1)
    a_minute_passes()
    sent_before = len(verify_codes(sandbox, PHONE))
    client.post(VERIFY + "send/")
    assert VerifyBreaker.objects.get(scope="platform").state == "open"
    assert len(verify_codes(sandbox, PHONE)) == sent_before  # Verify sent nothing
    [sms] = sms_to(sandbox, PHONE)
    code = sms["body"].split("code is ")[1][:6]
    assert client.post(VERIFY, {"code": code}).status_code == 302
    assert StaffVerification.objects.filter(fallback=True, status="approved").count() == 1
