"""Enqueueing Celery tasks from services, by task name.

The task modules (`messaging.tasks`) import the services they wrap, so a service cannot import a
task object back without an import cycle. Services name the task instead. A process that has
looks the task up in the Celery app's registry and calls `task.delay`, which keeps eager mode and
per-task options. Outside a worker nothing has imported the task modules yet, so the first lookup
runs Celery's autodiscovery (`import_default_modules`, what a worker does at start); a task that
is still unknown then is published by name.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction

#: Task names as django-celery-beat rows and queued messages know them: never rename.
MESSAGE_DELIVER_TASK = "messaging.tasks.message_deliver_task"
BULK_QUEUE_TASK = "messaging.bulk_tasks.bulk_queue"
BULK_DISPATCH_TASK = "messaging.bulk_tasks.bulk_dispatch"
SEGMENTS_FETCH_TASK = "messaging.tasks.message_segments_fetch_task"


def task_delay(name: str, *args) -> None:
    """Publish task `name` with positional `args`, as `task.delay(*args)` would."""
    task = current_app.tasks.get(name)
    if task is None:
        current_app.loader.import_default_modules()  # autodiscovery, once per process
        task = current_app.tasks.get(name)
    if task is None:
        current_app.send_task(name, args=args)
    else:
        task.delay(*args)


def deliveries_enqueue_on_commit(message_ids: list[int]) -> None:
    """Publish one delivery task per message after the transaction commits. A failed publish
    (broker down) is logged, not raised: the periodic release re-enqueues stale rows."""
    if not message_ids:
        return

    def publish() -> None:
        for pk in message_ids:
            task_delay(MESSAGE_DELIVER_TASK, pk)

    transaction.on_commit(publish, robust=True)


def segments_fetch_enqueue_on_commit(message_id: int) -> None:
    """Publish the segment-count fetch after the transaction commits (the status path calls
    this instead of Twilio, so a webhook never waits on an outbound request)."""
    transaction.on_commit(lambda: task_delay(SEGMENTS_FETCH_TASK, message_id), robust=True)
