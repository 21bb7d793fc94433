"""Celery tasks for bulk sends: thin wrappers around `messaging.delivery.bulk` (ids in,
services called).

Every task is idempotent (tasks are acknowledged late and redelivered when a worker dies):
queueing drops the stored rows in the same transaction that creates the messages, and a
dispatcher holds a per-bulk-send lock while `message_deliver` leases each message.
"""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

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
def bulk_dispatch_task(bulk_id: int, wait_for_lock: bool = False) -> int:
    """Send for up to DISPATCH_BUDGET_SECONDS, then hand over to a fresh task if messages remain
    (short tasks keep a worker restart, a deploy or a pause from waiting on a long loop)."""
    result = bulk_dispatch(bulk_id=bulk_id, wait_for_lock=wait_for_lock)
    if result.more:
        bulk_dispatch_task.delay(bulk_id)
    elif result.backoff:
        bulk_dispatch_task.apply_async((bulk_id,), countdown=BACKOFF_SECONDS)
    return result.handed_over


@shared_task(name="messaging.bulk_tasks.bulk_dispatch_kick")
def bulk_dispatch_kick(after_restart: bool = False) -> int:
    """Periodic safety net: (re)start a dispatcher for every running bulk send — deferred
    messages that came due, a task lost with its worker — and queue launched rows left behind.
    A dispatcher already running keeps its lock, so the extra task ends at once.

    `after_restart` (sent when a worker starts): a dispatcher that died with the previous worker
    still holds its lock for a few seconds, and the broker keeps its task unacknowledged until
    the visibility timeout, so the new dispatchers wait that lock out instead of ending."""
    for bulk_id in bulks_to_queue():
        bulk_queue_task.delay(bulk_id)
    running = bulks_to_dispatch()
    for bulk_id in running:
        bulk_dispatch_task.delay(bulk_id, wait_for_lock=after_restart)
    return len(running)


@worker_ready.connect
def bulk_dispatch_after_restart(**kwargs) -> None:
    """A worker that starts (first boot, or a restart after its predecessor was killed) resumes
    running bulk sends at once, instead of after the next beat kick and a dead dispatcher's lock."""
    bulk_dispatch_kick.delay(after_restart=True)
