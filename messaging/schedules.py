"""Messaging's periodic jobs: registered in `tenants.registry.periodic_tasks` (messaging.registrations)
and installed by `tenants.schedules.schedules_install`."""

from datetime import timedelta

PERIODIC_TASKS = [
    {
        "name": "Release deferred outbound messages and re-enqueue lost ones",
        "task": "messaging.tasks.deferred_messages_release_task",
        "every": timedelta(seconds=60),
    },
    {
        "name": "Dispatch running bulk sends (restart lost dispatchers, pick up released deferrals)",
        "task": "messaging.bulk_tasks.bulk_dispatch_kick",
        "every": timedelta(seconds=15),
    },
    {
        "name": "Resync stale message statuses and lost inbound messages from Twilio",
        "task": "messaging.tasks.messages_resync_task",
        "every": timedelta(minutes=5),
    },
    {
        "name": "Recount the dashboard's hourly message counts",
        "task": "messaging.tasks.message_hourly_recount_task",
        "every": timedelta(minutes=5),
    },
]
