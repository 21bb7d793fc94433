"""Message statuses and the one rule that decides whether a stored status may change.

Twilio's status callbacks are not guaranteed to arrive in order and are sometimes repeated, so
the portal never simply overwrites the stored status with whatever arrived last. Instead every
status has a place in a partial order and the stored status only moves forward:

    pending < accepted = scheduled < queued < sending < sent < partially_delivered
            < final {delivered, undelivered, failed, canceled} < read

* The first final status to arrive wins; a final status is never replaced by another final one.
* Only ``read`` may follow a final status, and only after ``delivered`` (an ``undelivered``
  message cannot have been read). ``read`` may also arrive before ``delivered`` (WhatsApp), and
  then a late ``delivered`` is ignored.
* ``blocked`` is the portal's own: the compliance gate refused the send, so the message never
  reached Twilio. It can only replace ``pending`` and nothing ever replaces it.
* Inbound messages have their own two-step order, ``receiving < received``; inbound and
  outbound statuses never replace each other.

The portal's send bookkeeping (claims, leases, attempts) lives in other fields, never here.
"""

from __future__ import annotations

__all__ = [
    "ACCEPTED",
    "BLOCKED",
    "CANCELED",
    "COUNT_LABELS",
    "DEFERRED",
    "DELIVERED",
    "FAILED",
    "IN_PROGRESS",
    "IN_PROGRESS_STATUSES",
    "FINAL_STATUSES",
    "INBOUND_STATUSES",
    "INBOUND_STATUS_CHOICES",
    "OUTBOUND_STATUSES",
    "OUTBOUND_STATUS_CHOICES",
    "PARTIALLY_DELIVERED",
    "PENDING",
    "QUEUED",
    "READ",
    "RECEIVED",
    "RECEIVING",
    "SCHEDULED",
    "SENDING",
    "SENT",
    "STATUS_CHOICES",
    "STATUS_LABELS",
    "TWILIO_FINAL_STATUSES",
    "UNDELIVERED",
    "count_group",
    "is_final",
    "status_label",
    "status_rank",
    "status_should_advance",
]

# Outbound
PENDING = "pending"  # ours: stored, not yet accepted by Twilio
BLOCKED = "blocked"  # ours: the compliance gate said never; final
ACCEPTED = "accepted"
SCHEDULED = "scheduled"
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
PARTIALLY_DELIVERED = "partially_delivered"
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
CANCELED = "canceled"
READ = "read"
# Inbound
RECEIVING = "receiving"
RECEIVED = "received"

#: Django ``choices`` for outbound messages, in lifecycle order.
OUTBOUND_STATUS_CHOICES: tuple[tuple[str, str], ...] = (
    (PENDING, "Pending"),
    (BLOCKED, "Blocked by compliance"),
    (ACCEPTED, "Accepted"),
    (SCHEDULED, "Scheduled"),
    (QUEUED, "Queued"),
    (SENDING, "Sending"),
    (SENT, "Sent"),
    (PARTIALLY_DELIVERED, "Partially delivered"),
    (DELIVERED, "Delivered"),
    (UNDELIVERED, "Undelivered"),
    (FAILED, "Failed"),
    (CANCELED, "Canceled"),
    (READ, "Read"),
)

#: Django ``choices`` for inbound messages.
INBOUND_STATUS_CHOICES: tuple[tuple[str, str], ...] = (
    (RECEIVING, "Receiving"),
    (RECEIVED, "Received"),
)

#: Every status, for a single ``status`` field shared by both directions.
STATUS_CHOICES: tuple[tuple[str, str], ...] = OUTBOUND_STATUS_CHOICES + INBOUND_STATUS_CHOICES

OUTBOUND_STATUSES: frozenset[str] = frozenset(value for value, _ in OUTBOUND_STATUS_CHOICES)
INBOUND_STATUSES: frozenset[str] = frozenset(value for value, _ in INBOUND_STATUS_CHOICES)

#: Twilio's own final statuses: the first of these to arrive wins.
TWILIO_FINAL_STATUSES: frozenset[str] = frozenset({DELIVERED, UNDELIVERED, FAILED, CANCELED})

#: Statuses after which a message's delivery outcome is settled: no retry, no more sending.
#: ``read`` only ever follows ``delivered``; ``blocked`` is the compliance gate's final word.
FINAL_STATUSES: frozenset[str] = TWILIO_FINAL_STATUSES | {READ, BLOCKED}

#: Every status's label: the one vocabulary of every page (log, detail, dashboard, bulk pages).
STATUS_LABELS: dict[str, str] = dict(STATUS_CHOICES)

# --- Counting groups ------------------------------------------------------------------------
# Pages that count messages (bulk progress, the dashboard) group a few statuses together; the
# groups are named here so that the same message is counted under the same label everywhere.
# In particular ``undelivered`` (a carrier said no, e.g. 30003) is never counted as ``failed``.

#: Handed to Twilio (or the carrier), no outcome yet.
IN_PROGRESS = "in_progress"
#: Pending, held back by the compliance gate (quiet hours, frequency cap) until a later time.
DEFERRED = "deferred"
IN_PROGRESS_STATUSES: frozenset[str] = frozenset({ACCEPTED, SCHEDULED, QUEUED, SENDING, SENT, PARTIALLY_DELIVERED})

#: Group key -> label, in the order pages show them.
COUNT_LABELS: dict[str, str] = {
    PENDING: STATUS_LABELS[PENDING],
    DEFERRED: "Deferred",
    IN_PROGRESS: "In progress",
    DELIVERED: STATUS_LABELS[DELIVERED],
    UNDELIVERED: STATUS_LABELS[UNDELIVERED],
    FAILED: STATUS_LABELS[FAILED],
    BLOCKED: STATUS_LABELS[BLOCKED],
    CANCELED: STATUS_LABELS[CANCELED],
}


def status_label(status: str) -> str:
    """The label pages show for a stored status (or a counting group)."""
    return STATUS_LABELS.get(status) or COUNT_LABELS.get(status) or status.replace("_", " ").capitalize()


def count_group(status: str, *, deferred: bool = False) -> str:
    """The counting group of an outbound message's status (a key of :data:`COUNT_LABELS`).

    ``read`` counts as delivered (it was). `deferred` says the gate holds a pending message.
    """
    if status == PENDING:
        return DEFERRED if deferred else PENDING
    if status in (DELIVERED, READ):
        return DELIVERED
    if status in IN_PROGRESS_STATUSES:
        return IN_PROGRESS
    return status


_FINAL_RANK = 6
_OUTBOUND_RANK: dict[str, int] = {
    PENDING: 0,
    ACCEPTED: 1,
    SCHEDULED: 1,
    QUEUED: 2,
    SENDING: 3,
    SENT: 4,
    PARTIALLY_DELIVERED: 5,
    DELIVERED: _FINAL_RANK,
    UNDELIVERED: _FINAL_RANK,
    FAILED: _FINAL_RANK,
    CANCELED: _FINAL_RANK,
    READ: 7,
}
_INBOUND_RANK: dict[str, int] = {RECEIVING: 0, RECEIVED: 1}


def status_rank(status: str) -> int | None:
    """Position of ``status`` within its direction's order (equal ranks are interchangeable).

    ``blocked`` and unknown statuses have no rank: they do not take part in the ordering.
    """
    if status in _OUTBOUND_RANK:
        return _OUTBOUND_RANK[status]
    return _INBOUND_RANK.get(status)


def is_final(status: str) -> bool:
    """Whether ``status`` settles an outbound message (see :data:`FINAL_STATUSES`)."""
    return status in FINAL_STATUSES


def status_should_advance(current: str, new: str) -> bool:
    """True when a message whose stored status is ``current`` may be moved to ``new``.

    Used for every status callback, so repeated and out-of-order callbacks are harmless: the
    same status, an older status, an unknown status or a second final status all return False.
    An empty ``current`` (nothing stored yet) accepts any known status; an unrecognised stored
    value yields to any known one so that a bad row can be repaired by the next callback.
    """
    if new == current:
        return False
    if new != BLOCKED and status_rank(new) is None:
        return False  # unknown, or a status Twilio may add later: keep what we know
    if not current or (current != BLOCKED and status_rank(current) is None):
        return True
    if current == BLOCKED:
        return False
    if new == BLOCKED:
        # The gate runs before Twilio sees the message; afterwards "blocked" is meaningless.
        return current == PENDING

    if (current in _INBOUND_RANK) != (new in _INBOUND_RANK):
        return False  # never mix directions
    if current in _INBOUND_RANK:
        return _INBOUND_RANK[new] > _INBOUND_RANK[current]

    if current in TWILIO_FINAL_STATUSES:
        return current == DELIVERED and new == READ
    return _OUTBOUND_RANK[new] > _OUTBOUND_RANK[current]
