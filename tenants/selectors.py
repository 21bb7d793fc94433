"""Reads for tenants and the platform overview."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q, Sum
from django.utils import timezone

from .models import AuditEvent, Membership, Tenant, WebhookRejection


def membership_list(*, tenant: Tenant):
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__username")


def webhook_rejections_by_tenant(*, days: int = 7) -> dict[int | None, int]:
    """Rejected webhooks per tenant id over the last `days` days (None: unknown AccountSid)."""
    since = timezone.now().date() - timedelta(days=days - 1)
    rows = WebhookRejection.objects.filter(day__gte=since).values("tenant_id").annotate(total=Sum("count"))
    return {row["tenant_id"]: row["total"] for row in rows}


def webhook_rejection_list(*, tenant: Tenant, days: int = 30):
    since = timezone.now().date() - timedelta(days=days - 1)
    return WebhookRejection.objects.filter(tenant=tenant, day__gte=since).order_by("-day", "reason")


def audit_event_list(*, tenant: Tenant | None, limit: int = 200):
    qs = AuditEvent.objects.select_related("actor")
    qs = qs.filter(tenant=tenant) if tenant is not None else qs
    return qs[:limit]


def tenant_list_for(user, *, search: str = ""):
    qs = Tenant.objects.visible_to(user)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    return qs
