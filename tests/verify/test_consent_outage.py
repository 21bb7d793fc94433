"""Verify failing on its side (503, then timeouts): the public form still completes through the
portal's fallback code, the breaker opens, reopens on a failed probe and closes after a good
one, nothing is sent twice; a 60200 answer is a clear message and leaves the breaker closed."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.db.models import F
from django.test import Client

from messaging.models import ConsentEvent
from tests.verify.support import add_fault, sms_to, verify_codes
from verify.models import Verification, VerifyBreaker

URL = "/c/acme/offers/"


def cool_down_passes(tenant, settings) -> None:
    """The breaker's cool-down is over (moved back in time rather than waited for)."""
    VerifyBreaker.objects.filter(scope=f"tenant:{tenant.pk}").update(
        opened_at=F("opened_at") - timedelta(seconds=settings.VERIFY_BREAKER_COOLDOWN_SECONDS + 1)
    )


def start(phone: str, ip: str, runner) -> Client:
    person = Client()
    data = {"action": "start", "phone": phone, "agree": "on", "website": ""}
    response = runner(person.post, URL, data, REMOTE_ADDR=ip)
    assert response.status_code == 302, response.content
    return person


def code_sms(sandbox, phone: str) -> list[str]:
    return [m["body"].split("code is ")[1][:6] for m in sms_to(sandbox, phone) if "code is " in m["body"]]


def breaker(tenant) -> VerifyBreaker:
    return VerifyBreaker.objects.get(scope=f"tenant:{tenant.pk}", channel="sms")


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    def runner(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return runner


def test_503_then_timeouts_fall_back_and_the_breaker_opens_and_closes(
    consent_form, sandbox, settings, run, support_user
):
    tenant = consent_form.tenant
    add_fault(sandbox, kind="503", path_contains="/Verifications", count=1)
    add_fault(sandbox, kind="timeout", path_contains="/Verifications", count=1, stall_seconds=3)

    # 1. Verify answers 503: the code comes from the portal, by SMS, and the form completes.
    ana = start("+14155550181", "203.0.113.21", run)
    assert breaker(tenant).state == VerifyBreaker.State.OPEN
    [code] = code_sms(sandbox, "+14155550181")
    assert verify_codes(sandbox, "+14155550181") == []
    done = run(ana.post, URL, {"action": "check", "code": code}, REMOTE_ADDR="203.0.113.21")
    assert done.status_code == 200 and b"subscribed" in done.content
    event = ConsentEvent.objects.for_tenant(tenant).get(phone="+14155550181")
    assert event.method == "double_opt_in" and "fallback code" in event.note

    # While open and cooling down, nobody asks Verify.
    assert Client().get("/support/").status_code == 302  # anonymous: login
    staff = Client()
    staff.force_login(support_user)
    assert b'data-verify-breaker="sms"' in staff.get("/support/").content
    start("+14155550182", "203.0.113.22", run)
    assert Verification.objects.for_tenant(tenant).get(to="+14155550182").fallback

    # 2. After the cool-down one request probes Verify; it times out: open again, fallback again.
    cool_down_passes(tenant, settings)
    start("+14155550183", "203.0.113.23", run)
    assert breaker(tenant).state == VerifyBreaker.State.OPEN and breaker(tenant).failures == 2
    assert len(code_sms(sandbox, "+14155550183")) == 1

    # 3. Verify is back: the next probe succeeds and closes the breaker; codes come from Verify.
    cool_down_passes(tenant, settings)
    dee = start("+14155550184", "203.0.113.24", run)
    assert breaker(tenant).state == VerifyBreaker.State.CLOSED
    [issued] = verify_codes(sandbox, "+14155550184")
    assert code_sms(sandbox, "+14155550184") == []
    assert (
        run(dee.post, URL, {"action": "check", "code": issued["code"]}, REMOTE_ADDR="203.0.113.24").status_code == 200
    )

    # Nothing sent twice: exactly one code reached each person, by one path.
    for phone in ("+14155550181", "+14155550182", "+14155550183", "+14155550184"):
        assert len(code_sms(sandbox, phone)) + len(verify_codes(sandbox, phone)) == 1, phone
    injected = requests.get(f"{sandbox.base_url}/sandbox/faults/injected", timeout=5).json()
    assert [f["mode"] for f in injected] == ["error", "stall"]


def test_60200_is_a_clear_message_and_leaves_the_breaker_closed(consent_form, sandbox, run):
    add_fault(sandbox, status=400, code=60200, path_contains="/Verifications", count=1)
    response = Client().post(URL, {"action": "start", "phone": "+14155550185", "agree": "on"})
    assert response.status_code == 400
    assert b"doesn&#x27;t look right" in response.content
    assert not VerifyBreaker.objects.exclude(state=VerifyBreaker.State.CLOSED).exists()
    assert Verification.objects.for_tenant(consent_form.tenant).get(to="+14155550185").status == "failed"
