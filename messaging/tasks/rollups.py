"""The dashboard's hourly counts (`messaging.rollups`), recounted by beat."""

from celery import shared_task

from ..rollups import message_hourly_recount


@shared_task(name="messaging.tasks.message_hourly_recount_task")
def message_hourly_recount_task() -> int:
    """Periodic (every 5 minutes): recount the recent hours of every tenant's messages."""
    return message_hourly_recount()
