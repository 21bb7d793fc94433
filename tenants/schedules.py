"""Periodic jobs, installed into django-celery-beat's database scheduler after every migrate.

Each app lists its jobs in `PERIODIC_TASKS` in its own `schedules.py`; `schedules_install`
creates or updates them (idempotent), so a fresh database and an upgraded one end up with the
same schedule, and an operator can still pause a job in the admin (its `enabled` flag is kept).
"""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

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

APPS = ("tenants", "messaging", "voice", "verify")


def all_periodic_tasks() -> list[dict]:
    jobs = []
    for app in APPS:
        try:
            module = import_module(f"{app}.schedules")
        except ModuleNotFoundError:
            continue
        jobs.extend(getattr(module, "PERIODIC_TASKS", []))
    return jobs


def schedules_install(**_kwargs) -> int:
    """Create or update every app's periodic task; returns how many there are."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    jobs = all_periodic_tasks()
    for job in jobs:
        seconds = int(job["every"].total_seconds())
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.update_or_create(
            name=job["name"], defaults={"task": job["task"], "interval": interval, "crontab": None}
        )
    return len(jobs)
