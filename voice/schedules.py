"""Voice's periodic jobs: registered in `tenants.registry.periodic_tasks` (voice.registrations)
and installed by `tenants.schedules.schedules_install`."""

from datetime import timedelta

PERIODIC_TASKS = [
    {
        "name": "Resync stale call statuses from Twilio",
        "task": "voice.tasks.calls_resync_task",
        "every": timedelta(minutes=5),
    },
]
