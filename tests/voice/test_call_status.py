"""Call status callbacks: idempotent per (CallSid, CallStatus), never moving backwards whatever
the order, the same final state for every permutation of a real callback set (run it on
PostgreSQL too: DATABASE_URL), and no 5xx for hostile values."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from tests.concurrency import postgresql_required, run_concurrently
from tests.conftest import services_required
from tests.tenants.factories import TenantFactory, random_sid
from tests.voice.callbacks import call_callback
from voice.calls.status import call_status_apply
from voice.calls.statuses import call_status_should_advance
from voice.models import Call, CallEvent

pytestmark = pytest.mark.django_db


def _state(call: Call) -> tuple:
    call.refresh_from_db()
    events = sorted(CallEvent.objects.for_tenant(call.tenant).filter(call=call).values_list("status", flat=True))
    return (
        call.status,
        call.duration,
        call.sequence_number,
        call.answered_by,
        call.started_at,
        call.ended_at,
        call.direction,
        call.from_number,
        tuple(events),
    )


def _answered_set(tenant, sid, *, with_sequence=True):
    seq = iter(range(10)) if with_sequence else itertools.repeat(None)
    return [
        call_callback(tenant, sid, "initiated", next(seq)),
        call_callback(tenant, sid, "ringing", next(seq)),
        call_callback(tenant, sid, "in-progress", next(seq), AnsweredBy="human"),
        call_callback(tenant, sid, "completed", next(seq), CallDuration="42", AnsweredBy="human"),
    ]


@pytest.mark.parametrize("with_sequence", [True, False])
def test_every_permutation_ends_in_the_same_state(tenant, post_status, with_sequence):
    states = set()
    for order in itertools.permutations(range(4)):
        sid = random_sid("CA")
        callbacks = _answered_set(tenant, sid, with_sequence=with_sequence)
        for index in order:
            assert post_status(callbacks[index]).status_code == 204
        # and every callback again, as Twilio's retries would
        for index in reversed(order):
            assert post_status(callbacks[index]).status_code == 204
        call = Call.objects.for_tenant(tenant).get(sid=sid)
        states.add(_state(call)[:-1] + (len(_state(call)[-1]),))
    assert len(states) == 1
    status, duration, sequence, answered_by, started, ended, direction, caller, events = states.pop()
    assert (status, duration, answered_by, direction, caller, events) == (
        "completed",
        42,
        "human",
        "inbound",
        "+14155550123",
        4,
    )
    assert sequence == (3 if with_sequence else None)
    assert started == datetime(2026, 12, 3, 14, 0, 10, tzinfo=UTC)
    assert ended == datetime(2026, 12, 3, 14, 0, 15, tzinfo=UTC)


def test_first_final_wins_and_unanswered_call_has_no_start(tenant, post_status, call_sid):
    post_status(call_callback(tenant, call_sid, "ringing", 1))
    post_status(call_callback(tenant, call_sid, "no-answer", 2, CallDuration="0"))
    post_status(call_callback(tenant, call_sid, "completed", 3, CallDuration="9"))
    call = Call.objects.for_tenant(tenant).get(sid=call_sid)
    assert (call.status, call.duration, call.started_at) == ("no-answer", 0, None)
    # the late "completed" is on the timeline, as Twilio said it, but moved nothing
    assert CallEvent.objects.for_tenant(tenant).filter(call=call).count() == 3


def test_a_repeat_writes_nothing(tenant, post_status, call_sid):
    callback = call_callback(tenant, call_sid, "completed", 3, CallDuration="5")
    post_status(callback)
    post_status(callback)
    assert CallEvent.objects.for_tenant(tenant).count() == 1
    assert Call.objects.for_tenant(tenant).count() == 1


def test_portal_call_gets_its_sid_from_the_callback(tenant, post_status, call_sid):
    call = Call.objects.create(
        tenant=tenant, direction="outbound", from_number="+14155550100", to_number="+14155550123", status="pending"
    )
    callback = call_callback(tenant, call_sid, "ringing", 1, Direction="outbound-api")
    assert post_status(callback, query=f"?call={call.pk}").status_code == 204
    call.refresh_from_db()
    assert (call.sid, call.status) == (call_sid, "ringing")


def test_another_tenants_call_sid_is_left_alone(tenant, other_tenant, post_status, call_sid):
    Call.objects.create(
        tenant=other_tenant, sid=call_sid, direction="inbound", from_number="+1", to_number="+2", status="ringing"
    )
    assert post_status(call_callback(tenant, call_sid, "completed", 3)).status_code == 204
    assert Call.objects.for_tenant(other_tenant).get(sid=call_sid).status == "ringing"
    assert not Call.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
    "field,value",
    [
        ("CallSid", "CA" + "f" * 40),
        ("CallSid", "not-a-sid\x00"),
        ("CallStatus", "exploded"),
    ],
)
def test_bad_identity_fields_are_refused_with_400(tenant, post_status, call_sid, field, value):
    assert post_status(call_callback(tenant, call_sid, "ringing", 1, **{field: value})).status_code == 400
    assert not Call.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
    "field,value",
    [
        ("SequenceNumber", "99999999999999999999"),
        ("CallDuration", "2147483648"),
        ("AnsweredBy", "machine_end_beep" * 10),
        ("From", "+1" + "5" * 60),
        ("To", "\x00\x00"),
        ("Timestamp", "yesterday, roughly"),
        ("Direction", "sideways\x00"),
    ],
)
def test_hostile_values_are_stored_harmlessly(tenant, post_status, call_sid, field, value):
    assert post_status(call_callback(tenant, call_sid, "completed", 3, **{field: value})).status_code == 204
    call = Call.objects.for_tenant(tenant).get(sid=call_sid)
    assert call.status == "completed"
    assert len(call.answered_by) <= 24 and len(call.from_number) <= 32


@pytest.mark.parametrize(
    "current,new,expected",
    [
        ("", "ringing", True),
        ("pending", "queued", True),
        ("ringing", "initiated", False),
        ("in-progress", "completed", True),
        ("completed", "busy", False),
        ("busy", "in-progress", False),
        ("pending", "blocked", True),
        ("blocked", "completed", False),
        ("queued", "blocked", False),
        ("ringing", "exploded", False),
    ],
)
def test_the_forward_only_rule(current, new, expected):
    assert call_status_should_advance(current, new) is expected


def test_a_lower_sequence_number_never_wins():
    assert not call_status_should_advance("ringing", "in-progress", current_sequence=5, new_sequence=2)
    assert call_status_should_advance("ringing", "in-progress", current_sequence=1, new_sequence=2)


# --- concurrency (PostgreSQL) ---------------------------------------------------------------------


@pytest.fixture
def postgresql():
    postgresql_required(services_required())


def _apply(tenant):
    return lambda params: call_status_apply(tenant=tenant, params=params, call_id=params.pop("call", None))


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_of_an_unknown_call_make_one_row_and_one_event_each(postgresql):
    tenant = TenantFactory(slug="race")
    sid = random_sid("CA")
    callbacks = _answered_set(tenant, sid)
    params = [dict(c) for c in callbacks for _ in range(5)]
    assert run_concurrently(_apply(tenant), params) == []
    call = Call.objects.for_tenant(tenant).get()
    assert (call.status, call.duration) == ("completed", 42)
    assert sorted(CallEvent.objects.for_tenant(tenant).values_list("status", flat=True)) == sorted(
        ["completed", "in-progress", "initiated", "ringing"]
    )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_callbacks_attach_a_placed_calls_sid_once(postgresql):
    tenant = TenantFactory(slug="race")
    placed = Call.objects.create(
        tenant=tenant, direction="outbound", from_number="+14155550100", to_number="+14155550123", status="pending"
    )
    sid = random_sid("CA")
    params = [{**c, "call": str(placed.pk)} for c in _answered_set(tenant, sid)]
    assert run_concurrently(_apply(tenant), params) == []
    assert Call.objects.for_tenant(tenant).count() == 1
    placed.refresh_from_db()
    assert (placed.sid, placed.status) == (sid, "completed")
