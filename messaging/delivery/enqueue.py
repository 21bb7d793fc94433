"""Enqueueing Celery tasks from services, by task name.

The task modules (`messaging.tasks`) import the services they wrap, so a service cannot import a
task object back without an import cycle. Services name the task instead. `task_delay` looks
the task up in the Celery app's registry and calls `task.delay`, which keeps eager mode and
per-task options. Outside a worker nothing has imported the task modules yet, so the first lookup
runs Celery's autodiscovery (`import_default_modules`, what a worker does at start); a task that
is still unknown then is published by name.

The broker may be unreachable. A publish then fails within seconds (the broker timeouts in
settings) and is logged, never raised: the request that published (a webhook, the send form)
still answers, and what it was publishing for lives in the database, where the periodic
release finds it (`messaging.delivery.deferred`).
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError

from .. import statuses
from ..models import Message

logger = logging.getLogger("commsportal.messaging")

#: Task names as django-celery-beat rows and queued messages know them: never rename.
MESSAGE_DELIVER_TASK = "messaging.tasks.message_deliver_task"
BULK_QUEUE_TASK = "messaging.bulk_tasks.bulk_queue"
BULK_DISPATCH_TASK = "messaging.bulk_tasks.bulk_dispatch"
SEGMENTS_FETCH_TASK = "messaging.tasks.message_segments_fetch_task"

#: Why a pending message has no delivery task yet; the periodic release looks for exactly this
#: text to enqueue it at its next run, and clears it when it does.
UNQUEUED_REASON = "Not queued yet: the worker was unreachable. It will be sent when the worker is reachable."


def task_delay(name: str, *args) -> bool:
    """Publish task `name` with positional `args`, as `task.delay(*args)` would.

    Returns False when the broker could not be reached (logged): the caller decides what the
    lost task means; True once published."""
    try:
        task = current_app.tasks.get(name)
        if task is None:
            current_app.loader.import_default_modules()  # autodiscovery, once per process
            task = current_app.tasks.get(name)
        if task is None:
            current_app.send_task(name, args=args)
        else:
            task.delay(*args)
    except OperationalError as exc:
        logger.warning("task.publish_failed", extra={"task": name, "error": str(exc)[:200]})
        return False
    return True


def deliveries_enqueue_on_commit(message_ids: list[int]) -> list[int]:
    """Publish one delivery task per message after the transaction commits. A message whose
    task could not be published (broker down) is marked `UNQUEUED_REASON`, so the periodic
    release enqueues it as soon as it runs again.

    Returns the list the unqueued ids are added to once the publish ran (at once outside a
    transaction), so a caller can tell its user without reading the rows again."""
    unqueued: list[int] = []
    if not message_ids:
        return unqueued

    def publish() -> None:
        for index, pk in enumerate(message_ids):
            if not task_delay(MESSAGE_DELIVER_TASK, pk):
                # The broker is down: waiting seconds more on it for each of the rest would
                # hold the request for minutes; they all wait for the release instead.
                unqueued.extend(message_ids[index:])
                break
        if unqueued:
            Message.all_tenants.filter(pk__in=unqueued, status=statuses.PENDING, sid__isnull=True).update(
                failure_reason=UNQUEUED_REASON
            )

    transaction.on_commit(publish, robust=True)
    return unqueued


def message_unqueued(message: Message) -> bool:
    """Whether `message` waits for the broker: its delivery task could not be published."""
    return message.status == statuses.PENDING and message.failure_reason == UNQUEUED_REASON


def segments_fetch_enqueue_on_commit(message_id: int) -> None:
    """Publish the segment-count fetch after the transaction commits (the status path calls
    this instead of Twilio, so a webhook never waits on an outbound request). Lost while the
    broker is down: the count stays unknown, which is what it was before."""
    transaction.on_commit(lambda: task_delay(SEGMENTS_FETCH_TASK, message_id), robust=True)
