"""Periodic jobs, installed into django-celery-beat's database scheduler after every migrate.

tenants' own jobs are `PERIODIC_TASKS` below; every other app registers its jobs in
`tenants.registry.periodic_tasks` from its `AppConfig.ready()`. `schedules_install` creates or
updates them all (idempotent), so a fresh database and an upgraded one end up with the
same schedule, and an operator can still pause a job in the admin (its `enabled` flag is kept).
"""

from __future__ import annotations

from datetime import timedelta

from django.apps import apps

from .registry import periodic_tasks

PERIODIC_TASKS = [
    {
        "name": "Purge webhook rejection counters older than 90 days",
        "task": "tenants.tasks.webhook_rejections_purge",
        "every": timedelta(days=1),
    },
    {
        "name": "Delivery alerts: failure rate and webhook signature spikes",
        "task": "tenants.tasks.delivery_alerts_check",
        "every": timedelta(minutes=5),
    },
    {
        "name": "Twilio reachability per tenant (for /healthz)",
        "task": "tenants.tasks.twilio_reachability_check",
        "every": timedelta(minutes=5),
    },
    {
        "name": "Retention: purge message bodies past each tenant's retention period",
        "task": "tenants.tasks.retention_purge",
        "every": timedelta(days=1),
    },
    {
        "name": "Numbers: sync each tenant's numbers and webhook drift from Twilio",
        "task": "tenants.tasks.numbers_sync_all",
        "every": timedelta(hours=6),
    },
]


def all_periodic_tasks() -> list[dict]:
    """tenants' jobs first, then each app's, in registration order."""
    return [*PERIODIC_TASKS, *(dict(job) for entry in periodic_tasks for job in entry.tasks)]


def schedules_install(**_kwargs) -> int:
    """Create or update every app's periodic task; returns how many there are.

    Connected to `post_migrate` by `tenants.apps`, which loads before any model: the models
    are looked up here, when the function runs.
    """
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")  # noqa: N806 - a model class
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")  # noqa: N806

    jobs = all_periodic_tasks()
    for job in jobs:
        seconds = int(job["every"].total_seconds())
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.update_or_create(
            name=job["name"], defaults={"task": job["task"], "interval": interval, "crontab": None}
        )
    return len(jobs)
