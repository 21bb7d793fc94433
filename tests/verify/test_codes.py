"""code_send / code_check against the sandbox's Verify: the happy path, the limits, the fallback
while Verify fails, and the breaker opening and closing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import Message
from tests.verify.support import add_fault, sms_to, verify_codes
from verify.codes import CodeError, code_check, code_send
from verify.models import Verification, VerificationStatus, VerifyBreaker

TO = "+14155550142"


def test_code_sent_through_verify_and_approved(verify_tenant, sandbox):
    sent = code_send(tenant=verify_tenant, to=TO, purpose="consent", client_ip="198.51.100.7")
    assert not sent.fallback
    assert sent.verification.sid.startswith("VE")
    verify_tenant.refresh_from_db()
    assert verify_tenant.verify_service_sid.startswith("VA")  # created through the API
    [issued] = verify_codes(sandbox, TO)
    assert (
        code_check(
            tenant=verify_tenant, verification_id=sent.id, code="000000" if issued["code"] != "000000" else "111111"
        ).status
        == "pending"
    )
    result = code_check(tenant=verify_tenant, verification_id=sent.id, code=issued["code"])
    assert result.approved and result.status == VerificationStatus.APPROVED
    row = Verification.objects.for_tenant(verify_tenant).get(pk=sent.id)
    assert row.attempts == 2 and not row.fallback


def test_verify_503_falls_back_and_opens_the_breaker(verify_tenant, sandbox, django_capture_on_commit_callbacks):
    add_fault(sandbox, kind="503", path_contains="/Verifications", count=1)
    with django_capture_on_commit_callbacks(execute=True):
        sent = code_send(tenant=verify_tenant, to=TO, purpose="consent")
    assert sent.fallback
    breaker = VerifyBreaker.objects.get(scope=f"tenant:{verify_tenant.pk}", channel="sms")
    assert breaker.state == VerifyBreaker.State.OPEN
    assert verify_codes(sandbox, TO) == []  # Verify sent nothing
    [sms] = sms_to(sandbox, TO)
    code = sms["body"].split("code is ")[1][:6]
    row = Verification.objects.for_tenant(verify_tenant).get(pk=sent.id)
    assert code not in row.code_hmac and len(row.code_hmac) == 64
    assert code_check(tenant=verify_tenant, verification_id=sent.id, code=code).approved
    message = Message.objects.for_tenant(verify_tenant).get(pk=row.message_id)
    assert code not in message.body  # redacted once the verification is over


def test_60200_is_refused_and_leaves_the_breaker_closed(verify_tenant, sandbox):
    with pytest.raises(CodeError) as caught:
        code_send(tenant=verify_tenant, to="+1415", purpose="consent")
    assert caught.value.kind == "refused" and caught.value.twilio_code == 60200
    assert not VerifyBreaker.objects.exclude(state="closed").exists()


def test_breaker_closes_after_a_successful_probe(verify_tenant, sandbox, settings):
    add_fault(sandbox, kind="503", path_contains="/Verifications", count=1)
    assert code_send(tenant=verify_tenant, to=TO, purpose="consent").fallback
    later = timezone.now() + timedelta(seconds=settings.VERIFY_BREAKER_COOLDOWN_SECONDS + 1)
    sent = code_send(tenant=verify_tenant, to="+14155550143", purpose="consent", now=later)
    assert not sent.fallback
    assert VerifyBreaker.objects.get(channel="sms").state == VerifyBreaker.State.CLOSED


def test_sends_are_limited_per_number(verify_tenant, sandbox):
    first = code_send(tenant=verify_tenant, to=TO, purpose="consent")
    with pytest.raises(CodeError) as caught:
        code_send(tenant=verify_tenant, to=TO, purpose="consent", verification_id=first.id)
    assert caught.value.kind == "limited" and caught.value.reason == "interval"


def test_a_4xx_answer_to_the_probe_closes_the_breaker(verify_tenant, sandbox, settings):
    add_fault(sandbox, kind="503", path_contains="/Verifications", count=1)
    assert code_send(tenant=verify_tenant, to=TO, purpose="consent").fallback
    later = timezone.now() + timedelta(seconds=settings.VERIFY_BREAKER_COOLDOWN_SECONDS + 1)
    with pytest.raises(CodeError):
        code_send(tenant=verify_tenant, to="+1415", purpose="consent", now=later)  # 60200: Verify answered
    assert VerifyBreaker.objects.get(channel="sms").state == VerifyBreaker.State.CLOSED
