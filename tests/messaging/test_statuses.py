"""The stored message status only ever moves forward, whatever order callbacks arrive in."""

from __future__ import annotations

import itertools

import pytest

from messaging.statuses import (
    ACCEPTED,
    BLOCKED,
    CANCELED,
    DELIVERED,
    FAILED,
    FINAL_STATUSES,
    INBOUND_STATUS_CHOICES,
    INBOUND_STATUSES,
    OUTBOUND_STATUS_CHOICES,
    OUTBOUND_STATUSES,
    PARTIALLY_DELIVERED,
    PENDING,
    QUEUED,
    READ,
    RECEIVED,
    RECEIVING,
    SCHEDULED,
    SENDING,
    SENT,
    STATUS_CHOICES,
    TWILIO_FINAL_STATUSES,
    UNDELIVERED,
    is_final,
    status_rank,
    status_should_advance,
)

# The chain from DOMAIN.md, with equal ranks grouped.
ORDER = [
    [PENDING],
    [ACCEPTED, SCHEDULED],
    [QUEUED],
    [SENDING],
    [SENT],
    [PARTIALLY_DELIVERED],
    [DELIVERED, UNDELIVERED, FAILED, CANCELED],
    [READ],
]
RANKED = [(status, level) for level, group in enumerate(ORDER) for status in group]
TWILIO_STATUSES = [
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "read",
    "canceled",
    "partially_delivered",
    "receiving",
    "received",
]


def apply(sequence: list[str], start: str = PENDING) -> str:
    """Replay callbacks the way the webhook handler does and return the stored status."""
    stored = start
    for status in sequence:
        if status_should_advance(stored, status):
            stored = status
    return stored


# --- constants ---------------------------------------------------------------------------------


def test_choices_are_value_label_pairs_usable_by_django():
    for value, label in STATUS_CHOICES:
        assert isinstance(value, str) and value == value.lower()
        assert isinstance(label, str) and label and label[0].isupper()
    values = [value for value, _ in STATUS_CHOICES]
    assert len(values) == len(set(values))
    assert max(len(v) for v in values) <= 20  # fits a CharField(max_length=20)


def test_choices_cover_every_twilio_status_plus_ours():
    values = {value for value, _ in STATUS_CHOICES}
    assert set(TWILIO_STATUSES) <= values
    assert values - set(TWILIO_STATUSES) == {PENDING, BLOCKED}


def test_direction_sets_match_their_choices():
    assert {v for v, _ in OUTBOUND_STATUS_CHOICES} == OUTBOUND_STATUSES
    assert {v for v, _ in INBOUND_STATUS_CHOICES} == INBOUND_STATUSES == {RECEIVING, RECEIVED}
    assert not OUTBOUND_STATUSES & INBOUND_STATUSES
    assert STATUS_CHOICES == OUTBOUND_STATUS_CHOICES + INBOUND_STATUS_CHOICES


def test_final_statuses():
    assert TWILIO_FINAL_STATUSES == {DELIVERED, UNDELIVERED, FAILED, CANCELED}
    assert FINAL_STATUSES == TWILIO_FINAL_STATUSES | {READ, BLOCKED}
    assert isinstance(FINAL_STATUSES, frozenset)
    for status in FINAL_STATUSES:
        assert is_final(status)
    for status in (PENDING, ACCEPTED, SCHEDULED, QUEUED, SENDING, SENT, PARTIALLY_DELIVERED):
        assert not is_final(status)


@pytest.mark.parametrize(("status", "level"), RANKED)
def test_rank_follows_the_documented_order(status, level):
    assert status_rank(status) == level


def test_rank_of_unranked_statuses():
    assert status_rank(BLOCKED) is None
    assert status_rank("bogus") is None
    assert status_rank(RECEIVING) < status_rank(RECEIVED)


# --- the order, pair by pair -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (a, b)
        for (a, la), (b, lb) in itertools.product(RANKED, RANKED)
        if la < lb and not (a in TWILIO_FINAL_STATUSES and b == READ)
    ],
)
def test_moves_forward_to_any_higher_rank(current, new):
    assert status_should_advance(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [(a, b) for (a, la), (b, lb) in itertools.product(RANKED, RANKED) if la > lb],
)
def test_never_moves_backwards(current, new):
    assert not status_should_advance(current, new)


@pytest.mark.parametrize("status", [*OUTBOUND_STATUSES, *INBOUND_STATUSES])
def test_same_status_is_not_an_advance(status):
    # Twilio repeats callbacks; a duplicate must not count as a change.
    assert not status_should_advance(status, status)


def test_accepted_and_scheduled_are_equal():
    assert not status_should_advance(ACCEPTED, SCHEDULED)
    assert not status_should_advance(SCHEDULED, ACCEPTED)


@pytest.mark.parametrize(("current", "new"), list(itertools.permutations(sorted(TWILIO_FINAL_STATUSES), 2)))
def test_first_final_status_wins(current, new):
    assert not status_should_advance(current, new)


def test_only_read_may_follow_delivered():
    assert status_should_advance(DELIVERED, READ)
    for status in (UNDELIVERED, FAILED, CANCELED):
        assert not status_should_advance(status, READ)


@pytest.mark.parametrize("new", [*OUTBOUND_STATUSES, *INBOUND_STATUSES, "bogus"])
def test_read_is_the_end(new):
    assert not status_should_advance(READ, new)


def test_non_final_may_go_straight_to_any_final_or_read():
    # Intermediate callbacks are optional: Twilio may skip straight to the outcome.
    for current in (PENDING, ACCEPTED, QUEUED, SENT, PARTIALLY_DELIVERED):
        for new in (*TWILIO_FINAL_STATUSES, READ):
            assert status_should_advance(current, new)


# --- blocked -----------------------------------------------------------------------------------


def test_blocked_only_replaces_pending():
    assert status_should_advance(PENDING, BLOCKED)
    assert status_should_advance("", BLOCKED)
    for current in OUTBOUND_STATUSES - {PENDING, BLOCKED}:
        assert not status_should_advance(current, BLOCKED), current
    for current in INBOUND_STATUSES:
        assert not status_should_advance(current, BLOCKED)


@pytest.mark.parametrize("new", [*OUTBOUND_STATUSES, *INBOUND_STATUSES, "bogus", ""])
def test_blocked_is_never_replaced(new):
    assert not status_should_advance(BLOCKED, new)


# --- inbound -----------------------------------------------------------------------------------


def test_inbound_order():
    assert status_should_advance(RECEIVING, RECEIVED)
    assert not status_should_advance(RECEIVED, RECEIVING)


@pytest.mark.parametrize("outbound", sorted(OUTBOUND_STATUSES))
@pytest.mark.parametrize("inbound", sorted(INBOUND_STATUSES))
def test_directions_never_mix(outbound, inbound):
    assert not status_should_advance(outbound, inbound)
    assert not status_should_advance(inbound, outbound)


# --- unknown and empty values ------------------------------------------------------------------


@pytest.mark.parametrize("current", [*OUTBOUND_STATUSES, *INBOUND_STATUSES, ""])
@pytest.mark.parametrize("new", ["bogus", "", "DELIVERED", " delivered", "delivered_late"])
def test_unknown_new_status_is_ignored(current, new):
    assert not status_should_advance(current, new)


@pytest.mark.parametrize("new", sorted(OUTBOUND_STATUSES | INBOUND_STATUSES))
def test_nothing_stored_yet_accepts_any_known_status(new):
    assert status_should_advance("", new)
    assert status_should_advance(None, new)  # type: ignore[arg-type]


def test_unrecognised_stored_value_is_repaired_by_a_known_status():
    assert status_should_advance("legacy-value", SENT)
    assert not status_should_advance("legacy-value", "other-garbage")


# --- out-of-order arrival sequences ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ([QUEUED, SENT, DELIVERED], DELIVERED),
        ([DELIVERED, SENT], DELIVERED),
        ([DELIVERED, QUEUED, SENDING, SENT], DELIVERED),
        ([SENT, QUEUED], SENT),
        ([SENDING, ACCEPTED, QUEUED], SENDING),
        ([FAILED, DELIVERED], FAILED),
        ([UNDELIVERED, DELIVERED], UNDELIVERED),
        ([DELIVERED, UNDELIVERED], DELIVERED),
        ([DELIVERED, FAILED, CANCELED], DELIVERED),
        ([CANCELED, SENT, DELIVERED], CANCELED),
        ([DELIVERED, READ], READ),
        ([SENT, READ, DELIVERED], READ),
        ([READ, DELIVERED], READ),
        ([READ, SENT], READ),
        ([UNDELIVERED, READ], UNDELIVERED),
        ([FAILED, READ], FAILED),
        ([PARTIALLY_DELIVERED, SENT], PARTIALLY_DELIVERED),
        ([SENT, PARTIALLY_DELIVERED, DELIVERED], DELIVERED),
        ([QUEUED, QUEUED, SENT, SENT], SENT),
        ([SCHEDULED, ACCEPTED, QUEUED], QUEUED),
        ([QUEUED, "mystery", SENT], SENT),
    ],
)
def test_sequences(sequence, expected):
    assert apply(sequence) == expected


def test_blocked_message_ignores_any_later_callback():
    assert apply([BLOCKED, QUEUED, DELIVERED, READ]) == BLOCKED
    assert apply([QUEUED, BLOCKED]) == QUEUED


def test_inbound_sequences():
    assert apply([RECEIVED, RECEIVING], start=RECEIVING) == RECEIVED
    assert apply([RECEIVED, DELIVERED], start="") == RECEIVED


def test_every_permutation_of_a_delivery_ends_at_the_same_place():
    # Whatever order the same set of callbacks arrives in, the outcome is the same.
    callbacks = [QUEUED, SENDING, SENT, DELIVERED, READ]
    outcomes = {apply(list(p)) for p in itertools.permutations(callbacks)}
    assert outcomes == {READ}


def test_every_permutation_keeps_the_first_final_status():
    for first_final in (DELIVERED, UNDELIVERED, FAILED):
        others = [s for s in (DELIVERED, UNDELIVERED, FAILED) if s != first_final]
        for rest in itertools.permutations([QUEUED, SENT, *others]):
            assert apply([first_final, *rest]) == first_final
