"""Celery tasks for tenants: thin wrappers that call services."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .models import WebhookRejection


@shared_task(name="tenants.tasks.webhook_rejections_purge")
def webhook_rejections_purge(days: int = 90) -> int:
    """Drop rejection counters older than `days` days; returns how many buckets went."""
    cutoff = timezone.now().date() - timedelta(days=days)
    deleted, _ = WebhookRejection.objects.filter(day__lt=cutoff).delete()
    return deleted
