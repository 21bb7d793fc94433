"""How often and how late a transient Twilio failure is retried: shared by the delivery task and
the bulk dispatcher, so a message gives up after the same number of attempts either way."""

from __future__ import annotations

import random

#: Delivery retries before a message is marked failed.
MAX_RETRIES = 6
#: Exponential backoff with full jitter: countdown = uniform(0, min(CAP, BASE * 2**retry)).
BACKOFF_BASE = 2.0
BACKOFF_CAP = 240.0
#: After an ambiguous failure (connection dropped: Twilio may have accepted it), wait at least
#: this long so Twilio's message list shows the message to the reconciling retry.
AMBIGUOUS_MIN_DELAY = 5.0


def backoff_countdown(retries: int, *, ambiguous: bool = False) -> float:
    """Seconds before retry number `retries + 1` (full jitter spreads a burst of 429s)."""
    countdown = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**retries))
    return max(countdown, AMBIGUOUS_MIN_DELAY) if ambiguous else countdown
