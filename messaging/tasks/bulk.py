"""Celery tasks for bulk sends: thin wrappers around `messaging.delivery.bulk` (ids in,
services called).

Every task is idempotent (tasks are acknowledged late and redelivered when a worker dies):
queueing drops the stored rows in the same transaction that creates the messages, and a
dispatcher holds a per-bulk-send lock while `message_deliver` leases each message.
"""

from __future__ import annotations

from celery import shared_task

from ..delivery.bulk.dispatch import bulk_dispatch, bulks_to_dispatch
from ..delivery.bulk.lifecycle import bulk_queue, bulks_to_queue

#: Pause before dispatching again when Twilio answered several retryable errors in a row
#: (short: far below the broker's visibility timeout).
BACKOFF_SECONDS = 30


@shared_task(name="messaging.bulk_tasks.bulk_queue")
def bulk_queue_task(bulk_id: int) -> dict:
    """Create the messages of a launched bulk send (big sends are queued here, not in the request)."""
    return bulk_queue(bulk_id=bulk_id)


@shared_task(name="messaging.bulk_tasks.bulk_dispatch")
def bulk_dispatch_task(bulk_id: int) -> int:
    """Send for up to DISPATCH_BUDGET_SECONDS, then hand over to a fresh task if messages remain
    (short tasks keep a worker restart, a deploy or a pause from waiting on a long loop)."""
    result = bulk_dispatch(bulk_id=bulk_id)
    if result.more:
        bulk_dispatch_task.delay(bulk_id)
    elif result.backoff:
        bulk_dispatch_task.apply_async((bulk_id,), countdown=BACKOFF_SECONDS)
    return result.handed_over


@shared_task(name="messaging.bulk_tasks.bulk_dispatch_kick")
def bulk_dispatch_kick() -> int:
    """Periodic safety net: (re)start a dispatcher for every running bulk send — deferred
    messages that came due, a task lost with its worker — and queue launched rows left behind.
    A dispatcher already running keeps its lock, so the extra task ends at once."""
    for bulk_id in bulks_to_queue():
        bulk_queue_task.delay(bulk_id)
    running = bulks_to_dispatch()
    for bulk_id in running:
        bulk_dispatch_task.delay(bulk_id)
    return len(running)
