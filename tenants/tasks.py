"""Celery tasks for tenants: thin wrappers that call services."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from . import alerts, monitoring, numbers, rejections, retention
from .models import Tenant, WebhookRejection
from .twilio import TwilioError


@shared_task(name="tenants.tasks.webhook_rejections_purge")
def webhook_rejections_purge(days: int = 90) -> int:
    """Drop rejection counters older than `days` days; returns how many buckets went.

    Flushes the counts still pending in the cache first, so none outlive their cache entry."""
    rejections.webhook_rejections_flush_all()
    cutoff = timezone.now().date() - timedelta(days=days)
    deleted, _ = WebhookRejection.objects.filter(day__lt=cutoff).delete()
    return deleted


# Both run every five minutes: a run that waited longer than that in the queue is skipped (the
# next one is due), and the soft limit stays below the interval so runs never pile up.
@shared_task(name="tenants.tasks.delivery_alerts_check", expires=240, soft_time_limit=120, time_limit=150)
def delivery_alerts_check() -> dict:
    """Raise/clear every registered alert kind for every tenant (tenants/alerts.py)."""
    return alerts.alerts_check()


@shared_task(name="tenants.tasks.twilio_reachability_check", expires=240, soft_time_limit=240, time_limit=270)
def twilio_reachability_check() -> dict:
    """Probe each active tenant's Twilio account and cache the results for /healthz."""
    return monitoring.twilio_reachability_check()


# Daily. The purge is resumable (purged rows are skipped), so it works to a budget well inside
# its time limit and, when a backlog remains, queues its own continuation a minute later
# instead of running for hours (Redis would redeliver it after the visibility timeout).
RETENTION_BUDGET_SECONDS = 480


@shared_task(name="tenants.tasks.retention_purge", soft_time_limit=600, time_limit=660)
def retention_purge() -> dict:
    """Purge each app's data past each tenant's retention period (tenants/retention.py)."""
    totals = retention.retention_purge_all(budget_seconds=RETENTION_BUDGET_SECONDS)
    if totals["incomplete"]:
        retention_purge.apply_async(countdown=60)
    return totals


@shared_task(name="tenants.tasks.numbers_sync_all", expires=3600, soft_time_limit=900, time_limit=960)
def numbers_sync_all() -> dict:
    """Re-sync every active tenant's numbers and Messaging Service membership (tenants/numbers.py)."""
    return numbers.numbers_sync_all()


@shared_task(name="tenants.tasks.numbers_sync_tenant", expires=3600, soft_time_limit=300, time_limit=330)
def numbers_sync_tenant(tenant_id: int) -> str:
    """Re-sync one tenant's numbers on demand (e.g. a call reached a number not synced yet)."""
    tenant = Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.ACTIVE).first()
    if tenant is None:
        return "skipped: no such active tenant"
    try:
        return str(numbers.numbers_sync(tenant=tenant))
    except TwilioError as exc:  # the 6-hourly sync tries again; nothing was changed
        return f"failed: {exc}"
