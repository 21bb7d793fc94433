"""Celery tasks for messaging: thin wrappers that take ids and call `messaging.sending`.

Retries and their backoff live here; what counts as retryable, and how a message is sent
exactly once, live in the services. Every task is idempotent: with `acks_late` and
`reject_on_worker_lost` a task whose worker died runs again.
"""

from __future__ import annotations

import random
import time

from celery import shared_task

from .sending import (
    DeliveryRetry,
    Outcome,
    deferred_messages_release,
    message_deliver,
    message_delivery_abandon,
    send_lease,
)

#: Delivery retries before a message is marked failed.
MAX_RETRIES = 6
#: Exponential backoff with full jitter: countdown = uniform(0, min(CAP, BASE * 2**retry)).
BACKOFF_BASE = 2.0
BACKOFF_CAP = 240.0
#: After an ambiguous failure (connection dropped: Twilio may have accepted it), wait at least
#: this long so Twilio's message list shows the message to the reconciling retry.
AMBIGUOUS_MIN_DELAY = 5.0
#: The periodic release stops looping after this long (beat runs it every minute).
RELEASE_TIME_BUDGET = 45.0


def backoff_countdown(retries: int, *, ambiguous: bool = False) -> float:
    """Seconds before retry number `retries + 1` (full jitter spreads a burst of 429s)."""
    countdown = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**retries))
    return max(countdown, AMBIGUOUS_MIN_DELAY) if ambiguous else countdown


@shared_task(bind=True, name="messaging.tasks.message_deliver_task", acks_late=True, max_retries=MAX_RETRIES)
def message_deliver_task(self, message_id: int) -> str:
    """Deliver one outbound message (`message_deliver`); retry transient Twilio failures."""
    try:
        outcome = message_deliver(message_id=message_id)
    except DeliveryRetry as exc:
        if self.request.retries >= self.max_retries:
            return message_delivery_abandon(message_id=message_id, reason=str(exc.error))
        raise self.retry(countdown=backoff_countdown(self.request.retries, ambiguous=exc.ambiguous)) from exc
    if outcome == Outcome.LEASED:
        # Another run holds the lease: a live worker finishing it, or a dead one whose lease
        # has to run out. Look again after the lease (short: well under the visibility timeout).
        if self.request.retries >= self.max_retries:
            return outcome
        raise self.retry(countdown=send_lease().total_seconds() + random.uniform(0, 5))
    return outcome


@shared_task(name="messaging.tasks.deferred_messages_release_task")
def deferred_messages_release_task(limit: int = 1000) -> int:
    """Periodic (every minute): release due deferred messages and re-enqueue lost ones."""
    started = time.monotonic()
    total = 0
    while True:
        handled = deferred_messages_release(limit=limit)
        total += handled
        if handled < limit or time.monotonic() - started > RELEASE_TIME_BUDGET:
            return total
