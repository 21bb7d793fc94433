"""How often and how late a transient Twilio failure is retried: shared by the delivery task and
the bulk dispatcher, so a message gives up after the same number of attempts either way; and
how long a message is worth sending at all (its purpose's deadline)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from ..models import Message, Purpose

#: Delivery retries before a message is marked failed. Only attempts that may have reached
#: Twilio, or that Twilio answered, count (`Message.send_attempts`); an outage counts none.
MAX_RETRIES = 6
#: Exponential backoff with full jitter: countdown = uniform(0, min(CAP, BASE * 2**retry)).
BACKOFF_BASE = 2.0
BACKOFF_CAP = 240.0
#: After an ambiguous failure (connection dropped: Twilio may have accepted it), wait at least
#: this long so Twilio's message list shows the message to the reconciling retry.
AMBIGUOUS_MIN_DELAY = 5.0
#: Once a task's quick retries are spent without spending the budget (Twilio unreachable), the
#: message waits in the database this long, growing with its age, before a fresh task tries.
POSTPONE_MIN = timedelta(seconds=60)
POSTPONE_MAX = timedelta(minutes=10)
#: An OTP older than this is not worth sending (Twilio Verify's default validity, too).


@dataclass(frozen=True)
class SendDeadline:
    at: datetime
    reason: str


def backoff_countdown(retries: int, *, ambiguous: bool = False) -> float:
    """Seconds before retry number `retries + 1` (full jitter spreads a burst of 429s)."""
    countdown = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**retries))
    return max(countdown, AMBIGUOUS_MIN_DELAY) if ambiguous else countdown


def postpone_delay(*, age: timedelta) -> timedelta:
    """How long a message that kept failing waits before its next round: a quarter of its age,
    within bounds, so a short outage costs a minute and a long one does not hammer Twilio."""
    return min(max(age / 4, POSTPONE_MIN), POSTPONE_MAX)


def otp_validity() -> timedelta:
    return timedelta(seconds=settings.MESSAGING_OTP_VALIDITY_SECONDS)


def send_deadline(message: Message) -> SendDeadline | None:
    """When `message` stops being worth sending, by its purpose, or None for never.

    Only a one-time passcode has a deadline of its own: its validity, counted from when it was
    queued. Marketing needs none here: the gate, re-checked before every attempt, keeps it out
    of quiet hours; other messages are sent late rather than lost.
    """
    if message.purpose != Purpose.OTP:
        return None
    validity = otp_validity()
    minutes = int(validity.total_seconds() // 60)
    return SendDeadline(
        at=message.created_at + validity,
        reason=(
            f"Expired unsent: a one-time passcode older than its {minutes}-minute validity is not "
            "worth sending (it could not be sent in time)."
        ),
    )
