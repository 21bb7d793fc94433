"""Celery tasks for messaging: thin wrappers that take ids and call `messaging.delivery`.

Retries and their backoff live here; what counts as retryable, and how a message is sent
exactly once, live in the services. Every task is idempotent: with `acks_late` and
`reject_on_worker_lost` a task whose worker died runs again.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

from celery import shared_task

from tenants.twilio import TwilioError

from ..delivery.attempts import (
    DeliveryRetry,
    Outcome,
    message_deliver,
    message_delivery_abandon,
    message_delivery_postpone,
    send_lease,
)
from ..delivery.deferred import deferred_messages_release
from ..delivery.pacing import pacing_key, pacing_reserve
from ..delivery.resync import messages_resync
from ..delivery.retries import MAX_RETRIES, backoff_countdown
from ..delivery.segment_counts import message_segments_fetch
from ..models import Message, SendingPolicy

#: The periodic release stops looping after this long (beat runs it every minute).
RELEASE_TIME_BUDGET = 45.0
#: A one-off send waits this long at most for its sender's pacing slot, then retries later.
PACING_MAX_WAIT = 10.0
DEFAULT_RATE = 1.0  # msgs/s: a US long code


def pacing_wait(message_id: int) -> float | None:
    """Reserve a slot in the message's sender bucket (shared with bulk sends and every worker).

    Returns the seconds to sleep before sending, or None when the bucket is booked further
    ahead than PACING_MAX_WAIT (the task then retries later instead of holding a worker).
    A message that is no longer waiting to be sent costs no slot.
    """
    row = (
        Message.all_tenants.filter(pk=message_id, status="pending", sid__isnull=True)
        .values_list("tenant_id", "from_number", "messaging_service_sid", "tenant__messaging_service_sid")
        .first()
    )
    if row is None:
        return 0.0
    tenant_id, from_number, service_sid, tenant_service_sid = row
    rate = SendingPolicy.objects.filter(tenant_id=tenant_id).values_list("messages_per_second", flat=True).first()
    # The same bucket the bulk dispatcher uses for this sender (bulk.sender, else the service).
    key = pacing_key(tenant_id=tenant_id, sender=from_number or service_sid or tenant_service_sid)
    return pacing_reserve(key=key, rate=rate if rate and rate > 0 else DEFAULT_RATE, max_wait=PACING_MAX_WAIT)


@shared_task(bind=True, name="messaging.tasks.message_deliver_task", acks_late=True, max_retries=MAX_RETRIES)
def message_deliver_task(self, message_id: int) -> str:
    """Deliver one outbound message (`message_deliver`), paced per sender; retry transient
    Twilio failures.

    The budget is the message's counted attempts (`send_attempts`: only those that may have
    reached Twilio or that it answered), not this task's retries: when the quick retries run
    out while Twilio was unreachable, the message waits in the database for the periodic
    release instead of failing (`message_delivery_postpone`).
    """
    wait = pacing_wait(message_id)
    if wait is None:
        # Busy sender: come back later as a fresh task, so waiting never eats Twilio retries.
        message_deliver_task.apply_async((message_id,), countdown=PACING_MAX_WAIT + random.uniform(0, PACING_MAX_WAIT))
        return "paced"
    if wait > 0:
        time.sleep(wait)
    try:
        outcome = message_deliver(message_id=message_id)
    except DeliveryRetry as exc:
        if _attempts_counted(message_id) > MAX_RETRIES:
            return message_delivery_abandon(message_id=message_id, reason=str(exc.error))
        if self.request.retries >= self.max_retries:
            return message_delivery_postpone(message_id=message_id, reason=str(exc.error))
        raise self.retry(countdown=backoff_countdown(self.request.retries, ambiguous=exc.ambiguous)) from exc
    if outcome == Outcome.LEASED:
        # Another run holds the lease: a live worker finishing it, or a dead one whose lease
        # has to run out. Look again after the lease (short: well under the visibility timeout).
        if self.request.retries >= self.max_retries:
            return outcome
        raise self.retry(countdown=send_lease().total_seconds() + random.uniform(0, 5))
    return outcome


def _attempts_counted(message_id: int) -> int:
    return Message.all_tenants.filter(pk=message_id).values_list("send_attempts", flat=True).first() or 0


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


@shared_task(bind=True, name="messaging.tasks.message_segments_fetch_task", acks_late=True, max_retries=3)
def message_segments_fetch_task(self, message_id: int) -> int | None:
    """Store the segment count Twilio billed, once the message is final (`message_segments_fetch`)."""
    try:
        return message_segments_fetch(message_id=message_id)
    except TwilioError as exc:
        if not exc.retryable or self.request.retries >= self.max_retries:
            return None  # the log shows "—": a missing count is not worth an alert
        raise self.retry(countdown=backoff_countdown(self.request.retries, ambiguous=False)) from exc


@shared_task(name="messaging.tasks.messages_resync_task")
def messages_resync_task(stale_after_seconds: float | None = None) -> dict:
    """Periodic (every 5 minutes): heal lost status callbacks and inbound webhooks from Twilio
    (`messages_resync`). Beat passes no argument (`STALE_AFTER`); a drill passes a shorter
    `stale_after_seconds` rather than wait ten minutes."""
    if stale_after_seconds is None:
        result = messages_resync()
    else:
        result = messages_resync(stale_after=timedelta(seconds=stale_after_seconds))
    return {
        "statuses_applied": result.statuses_applied,
        "inbound_stored": result.inbound_stored,
        "failed_tenants": result.failed_tenants,
    }
