"""Call statuses and the one rule that decides whether a call's stored status may change.

Twilio's call progress callbacks (like SMS status callbacks) may arrive late, twice or out of
order, so the stored status only moves forward:

    pending < queued < initiated < ringing < in-progress < final {completed, busy, no-answer,
    failed, canceled}

* The first final status to arrive wins; a final status is never replaced by another final one.
* ``blocked`` is the portal's own: the compliance gate refused the call, so it never reached
  Twilio. It can only replace ``pending``, and nothing replaces it.
* When both callbacks carry Twilio's ``SequenceNumber`` (the order Twilio emitted them in, per
  call), a lower one never replaces a higher one, even if its status ranks higher.

SMS keeps its own order in `messaging.statuses` (``read`` after a final, inbound statuses, equal
ranks): the two share the idea, not the table, so each stays a short readable rule.
"""

from __future__ import annotations

PENDING = "pending"
BLOCKED = "blocked"
QUEUED = "queued"
INITIATED = "initiated"
RINGING = "ringing"
IN_PROGRESS = "in-progress"
COMPLETED = "completed"
BUSY = "busy"
NO_ANSWER = "no-answer"
FAILED = "failed"
CANCELED = "canceled"

#: Twilio's final call statuses: the first of these to arrive wins.
FINAL_STATUSES: frozenset[str] = frozenset({COMPLETED, BUSY, NO_ANSWER, FAILED, CANCELED})
#: Statuses Twilio reports in a status callback (`pending` and `blocked` are ours).
CALLBACK_STATUSES: frozenset[str] = frozenset({QUEUED, INITIATED, RINGING, IN_PROGRESS}) | FINAL_STATUSES
#: Statuses a call may sit in while Twilio still owes us its outcome (the resync asks about these).
NOT_FINAL_AT_TWILIO: tuple[str, ...] = (QUEUED, INITIATED, RINGING, IN_PROGRESS)

_FINAL_RANK = 5
_RANK: dict[str, int] = {
    PENDING: 0,
    QUEUED: 1,
    INITIATED: 2,
    RINGING: 3,
    IN_PROGRESS: 4,
    **dict.fromkeys(FINAL_STATUSES, _FINAL_RANK),
}


def call_status_is_final(status: str) -> bool:
    """Whether `status` settles a call (Twilio's finals, and the gate's ``blocked``)."""
    return status in FINAL_STATUSES or status == BLOCKED


def call_status_should_advance(
    current: str, new: str, *, current_sequence: int | None = None, new_sequence: int | None = None
) -> bool:
    """True when a call stored at `current` (last applied `SequenceNumber` `current_sequence`)
    may move to `new` (carried with `new_sequence`). Repeats, older statuses, unknown statuses
    and a second final all answer False, so callbacks may be applied in any order."""
    if new == current:
        return False
    if new == BLOCKED:
        return current in ("", PENDING)
    if new not in _RANK:
        return False  # unknown, or a status Twilio may add later: keep what we know
    if not current or (current != BLOCKED and current not in _RANK):
        return True  # nothing stored, or a bad row the next callback repairs
    if current == BLOCKED or current in FINAL_STATUSES:
        return False
    if current_sequence is not None and new_sequence is not None and new_sequence < current_sequence:
        return False
    return _RANK[new] > _RANK[current]
