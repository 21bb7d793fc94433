"""Outbound calls from the portal: the TCPA gate (opted out, consent to a mobile, written
consent for marketing, quiet hours), the dial at Twilio (the sandbox) with status callbacks,
exactly once, a flow's call created before Twilio is asked."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from messaging.compliance.calls import call_gate_check
from tenants.audit import SYSTEM
from tenants.models import AuditEvent
from tests.messaging.factories import ConsentEventFactory, OptOutEventFactory
from tests.voice.factories import flow_version_create
from voice.calls.placing import DialOutcome, call_dial, call_place
from voice.models import Call, CallEvent

pytestmark = pytest.mark.django_db

MOBILE = "+14155550177"  # a US number: phonenumbers can't tell, so it counts as a mobile
LANDLINE = "+442079460000"  # a London fixed line
MORNING_CALIFORNIA = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
NIGHT_CALIFORNIA = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)  # 23:00 in San Francisco


def _verdict(tenant, to, purpose, now=MORNING_CALIFORNIA):
    verdict = call_gate_check(tenant=tenant, to=to, purpose=purpose, now=now)
    return verdict.decision, verdict.reason


def test_opted_out_number_is_blocked_even_with_consent(tenant):
    ConsentEventFactory(tenant=tenant, phone=MOBILE, purpose="transactional")
    OptOutEventFactory(tenant=tenant, phone=MOBILE)
    assert _verdict(tenant, MOBILE, "transactional") == ("block", "opted_out")


def test_a_mobile_needs_prior_express_consent(tenant):
    assert _verdict(tenant, MOBILE, "transactional") == ("block", "no_consent")
    ConsentEventFactory(tenant=tenant, phone=MOBILE, purpose="transactional", method="verbal")
    assert _verdict(tenant, MOBILE, "transactional") == ("send", "")


def test_consent_revoked_blocks_again(tenant):
    ConsentEventFactory(tenant=tenant, phone=MOBILE, purpose="informational")
    ConsentEventFactory(tenant=tenant, phone=MOBILE, purpose="informational", action="revoked")
    assert _verdict(tenant, MOBILE, "informational") == ("block", "no_consent")


def test_marketing_needs_written_consent(tenant):
    ConsentEventFactory(tenant=tenant, phone=MOBILE, purpose="marketing", method="verbal")
    assert _verdict(tenant, MOBILE, "marketing") == ("block", "no_consent")
    ConsentEventFactory(tenant=tenant, phone=MOBILE, purpose="marketing", method="web_form")
    assert _verdict(tenant, MOBILE, "marketing") == ("send", "")


def test_a_landline_needs_no_consent_for_an_informational_call(tenant):
    assert _verdict(tenant, LANDLINE, "transactional") == ("send", "")


def test_quiet_hours_block_a_marketing_call(tenant):
    ConsentEventFactory(tenant=tenant, phone=MOBILE, purpose="marketing", method="web_form")
    assert _verdict(tenant, MOBILE, "marketing", now=NIGHT_CALIFORNIA) == ("block", "quiet_hours")


def test_blocked_call_keeps_its_row_reason_and_audit(tenant, tenant_admin):
    OptOutEventFactory(tenant=tenant, phone=MOBILE)
    placed = call_place(
        tenant=tenant, to=MOBILE, from_number="+14155550100", purpose="transactional", audit=SYSTEM, message="Hello"
    )
    call = Call.objects.for_tenant(tenant).get(pk=placed.call.pk)
    assert (call.status, call.gate_decision, call.gate_reason) == ("blocked", "block", "opted_out")
    assert CallEvent.objects.for_tenant(tenant).filter(call=call, status="blocked").exists()
    assert AuditEvent.objects.filter(tenant=tenant, action="call.place").count() == 1
    assert call_dial(call_id=call.pk) == DialOutcome.SKIPPED


def test_call_needs_exactly_one_of_flow_and_message(tenant):
    with pytest.raises(ValueError):
        call_place(tenant=tenant, to=LANDLINE, from_number="+14155550100", purpose="transactional", audit=SYSTEM)


def _sandbox_call(sandbox, sid):
    with sandbox._lock:
        return dict(sandbox._calls[sid])


def test_spoken_message_is_placed_once_with_status_callbacks(twilio_tenant, sandbox):
    tenant = twilio_tenant
    sandbox.seed_number(tenant.account_sid, "+14155550100")
    placed = call_place(
        tenant=tenant, to=LANDLINE, from_number="+14155550100", purpose="transactional", audit=SYSTEM, message="Hi"
    )
    assert placed.call.status == "pending"
    assert call_dial(call_id=placed.call.pk) == DialOutcome.PLACED
    assert call_dial(call_id=placed.call.pk) == DialOutcome.SKIPPED  # a duplicated task never dials again
    call = Call.objects.for_tenant(tenant).get(pk=placed.call.pk)
    assert call.status == "queued" and call.sid.startswith("CA")
    at_twilio = _sandbox_call(sandbox, call.sid)
    assert at_twilio["to"] == LANDLINE
    assert at_twilio["_events"] == {"initiated", "ringing", "answered", "completed"}
    callback = urlsplit(at_twilio["_status_callback"])
    assert callback.path == "/webhooks/twilio/voice/status/" and parse_qs(callback.query) == {"call": [str(call.pk)]}
    assert len([c for c in sandbox._calls.values() if c["account_sid"] == tenant.account_sid]) == 1


def test_flow_call_row_exists_before_twilio_and_twilio_fetches_it_by_id(twilio_tenant, sandbox):
    tenant = twilio_tenant
    sandbox.seed_number(tenant.account_sid, "+14155550100")
    version = flow_version_create(tenant)
    placed = call_place(
        tenant=tenant,
        to="+14155550188",
        from_number="+14155550100",
        purpose="transactional",
        audit=SYSTEM,
        flow_version=version,
        callee_requested=True,
    )
    assert placed.call.flow_version_id == version.pk and placed.call.sid is None
    assert call_dial(call_id=placed.call.pk) == DialOutcome.PLACED
    call = Call.objects.for_tenant(tenant).get(pk=placed.call.pk)
    url = urlsplit(_sandbox_call(sandbox, call.sid)["_url"])
    assert url.path == "/webhooks/twilio/voice/inbound/" and parse_qs(url.query) == {"call": [str(call.pk)]}


def test_an_opt_out_arriving_before_the_dial_blocks_it(twilio_tenant, sandbox):
    tenant = twilio_tenant
    placed = call_place(
        tenant=tenant, to=LANDLINE, from_number="+14155550100", purpose="transactional", audit=SYSTEM, message="Hi"
    )
    OptOutEventFactory(tenant=tenant, phone=LANDLINE)
    assert call_dial(call_id=placed.call.pk) == DialOutcome.BLOCKED
    assert Call.objects.for_tenant(tenant).get(pk=placed.call.pk).gate_reason == "opted_out"
    assert not sandbox._calls


def test_twilio_refusal_fails_the_call_with_its_reason(twilio_tenant, sandbox):
    tenant = twilio_tenant  # +14155550100 is not the tenant's number at the sandbox: 21210
    placed = call_place(
        tenant=tenant, to=LANDLINE, from_number="+14155550100", purpose="transactional", audit=SYSTEM, message="Hi"
    )
    assert call_dial(call_id=placed.call.pk) == DialOutcome.FAILED
    call = Call.objects.for_tenant(tenant).get(pk=placed.call.pk)
    assert call.status == "failed" and "21210" in call.failure_reason


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_twilio_unreachable_releases_the_claim_for_a_retry(twilio_tenant, sandbox):
    tenant = twilio_tenant
    sandbox.seed_number(tenant.account_sid, "+14155550100")
    placed = call_place(
        tenant=tenant, to=LANDLINE, from_number="+14155550100", purpose="transactional", audit=SYSTEM, message="Hi"
    )
    sandbox.outage_begin()
    try:
        assert call_dial(call_id=placed.call.pk) == DialOutcome.RETRY  # refused: certainly not placed
    finally:
        sandbox.outage_end()
    call = Call.objects.for_tenant(tenant).get(pk=placed.call.pk)
    assert (call.status, call.dial_started_at) == ("pending", None)
    assert call_dial(call_id=placed.call.pk) == DialOutcome.PLACED
    assert len(sandbox._calls) == 1
