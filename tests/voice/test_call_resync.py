"""Resync (#14): a call whose final callback was lost is healed from Twilio through the same
forward-only path; the price is fetched after completion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.audit import SYSTEM
from tests.voice.factories import CallFactory
from tests.voice.test_call_place import LANDLINE, wait_for
from voice.calls.placing import call_dial, call_place
from voice.calls.resync import call_price_fetch, calls_resync
from voice.models import Call, CallEvent

pytestmark = pytest.mark.django_db


def _placed_and_finished_at_twilio(tenant, sandbox) -> Call:
    """A call placed through the sandbox, completed there, whose callbacks all got lost (they
    go to a closed port): the portal still says `queued`."""
    sandbox.seed_number(tenant.account_sid, "+14155550100")
    placed = call_place(
        tenant=tenant, to=LANDLINE, from_number="+14155550100", purpose="transactional", audit=SYSTEM, message="Hi"
    )
    call_dial(call_id=placed.call.pk)
    call = Call.objects.for_tenant(tenant).get(pk=placed.call.pk)
    assert wait_for(lambda: sandbox._calls[call.sid]["status"] == "completed")
    return call


def test_resync_heals_a_lost_final_callback(twilio_tenant, sandbox):
    call = _placed_and_finished_at_twilio(twilio_tenant, sandbox)
    Call.objects.for_tenant(twilio_tenant).filter(pk=call.pk).update(status="ringing")
    assert calls_resync().statuses_applied == 0  # not stale yet: callbacks may still come
    Call.objects.for_tenant(twilio_tenant).filter(pk=call.pk).update(
        status_updated_at=timezone.now() - timedelta(minutes=20)
    )
    result = calls_resync()
    assert result.statuses_applied == 1 and not result.failed_tenants
    call.refresh_from_db()
    assert call.status == "completed" and call.duration is not None and call.ended_at is not None
    assert CallEvent.objects.for_tenant(twilio_tenant).filter(call=call, status="completed").count() == 1
    assert calls_resync().statuses_applied == 0  # final now: never asked again


def test_price_is_fetched_from_the_call_resource(twilio_tenant, sandbox):
    call = _placed_and_finished_at_twilio(twilio_tenant, sandbox)
    assert call_price_fetch(call_id=call.pk) is True
    call.refresh_from_db()
    assert str(call.price) == "-0.01400" and call.price_unit == "USD"


def test_unreachable_twilio_skips_the_tenant_until_the_next_run(twilio_tenant, sandbox):
    call = CallFactory(tenant=twilio_tenant, status="ringing", status_updated_at=timezone.now() - timedelta(minutes=30))
    sandbox.outage_begin()
    try:
        assert calls_resync().failed_tenants == [twilio_tenant.slug]
    finally:
        sandbox.outage_end()
    assert calls_resync().failed_tenants == []  # Twilio doesn't know this SID: logged, left as it is
    call.refresh_from_db()
    assert call.status == "ringing"
