"""Reads for tenants and the platform overview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from .alerts import alerts_open_by_tenant
from .models import AuditEvent, Invitation, Membership, Tenant, WebhookRejection
from .monitoring import reachability_snapshot
from .registry import SupportColumn, support_columns
from .rejections import webhook_rejections_pending


def membership_list(*, tenant: Tenant):
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__username")


def membership_get(*, tenant: Tenant, membership_id: int) -> Membership | None:
    """One membership of `tenant` (another tenant's looks like a missing one), or None."""
    return Membership.objects.filter(tenant=tenant, pk=membership_id).select_related("user", "tenant").first()


def invitation_pending_list(*, tenant: Tenant):
    """Invitations of `tenant` that can still be accepted, newest first."""
    pending = Invitation.objects.for_tenant(tenant).filter(accepted_at__isnull=True, revoked_at__isnull=True)
    return pending.filter(expires_at__gt=timezone.now()).select_related("created_by")


def invitation_get(*, tenant: Tenant, invitation_id: int) -> Invitation | None:
    """One invitation of `tenant`, or None (another tenant's looks like a missing one)."""
    return Invitation.objects.for_tenant(tenant).filter(pk=invitation_id).select_related("tenant").first()


def invitation_get_by_token(*, token: str) -> Invitation | None:
    """The invitation a link leads to, whatever its tenant (the link names none), or None."""
    hashes = Invitation.token_hashes_for(token)
    return Invitation.all_tenants.filter(token_hash__in=hashes).select_related("tenant", "created_by").first()


def webhook_rejections_by_tenant(*, days: int = 7) -> dict[int | None, int]:
    """Rejected webhooks per tenant id over the last `days` days (None: unknown AccountSid),
    counts still pending in the cache included (`tenants.rejections`)."""
    since = timezone.now().date() - timedelta(days=days - 1)
    rows = WebhookRejection.objects.filter(day__gte=since).values("tenant_id").annotate(total=Sum("count"))
    totals: dict[int | None, int] = {row["tenant_id"]: row["total"] for row in rows}
    tenant_ids = [None, *Tenant.objects.values_list("id", flat=True)]
    for (tenant_id, _reason, day), count in webhook_rejections_pending(tenant_ids=tenant_ids).items():
        if day >= since:
            totals[tenant_id] = totals.get(tenant_id, 0) + count
    return totals


def webhook_rejection_list(*, tenant: Tenant, days: int = 30) -> list[WebhookRejection]:
    """The tenant's rejection counters per day and reason, newest first, pending counts included
    (rows built for display only where nothing is stored yet)."""
    now = timezone.now()
    since = now.date() - timedelta(days=days - 1)
    rows = {
        (r.day, r.reason): r
        for r in WebhookRejection.objects.filter(tenant=tenant, day__gte=since).order_by("-day", "reason")
    }
    for (_tenant_id, reason, day), count in webhook_rejections_pending(tenant_ids=[tenant.id]).items():
        if day < since:
            continue
        row = rows.get((day, reason))
        if row is None:
            rows[(day, reason)] = WebhookRejection(tenant=tenant, reason=reason, day=day, count=count, last_seen_at=now)
        else:
            row.count += count
    return [rows[key] for key in sorted(rows, key=lambda k: (-k[0].toordinal(), k[1]))]


def audit_event_list(*, tenant: Tenant | None, limit: int = 200):
    qs = AuditEvent.objects.select_related("actor")
    qs = qs.filter(tenant=tenant) if tenant is not None else qs
    return qs[:limit]


def audit_events(*, tenant: Tenant) -> QuerySet[AuditEvent]:
    """Every audit event of `tenant`, newest first: the order the log page's keyset paging walks."""
    return AuditEvent.objects.filter(tenant=tenant).order_by("-created_at", "-id")


def tenant_slug_taken(*, slug: str) -> bool:
    """Whether a tenant already has this slug (its URL, which never changes)."""
    return Tenant.objects.filter(slug=slug).exists()


def tenant_list_all() -> QuerySet[Tenant]:
    """Every tenant by name: the operators' list (they see all of them, whatever their status)."""
    return Tenant.objects.order_by("name")


def tenant_stored_get(*, tenant: Tenant) -> Tenant:
    """A fresh copy of the tenant's row for a settings form: the form validates (and changes)
    its copy, so the service still sees the values as they were and can tell what changed."""
    return Tenant.objects.get(pk=tenant.pk)


def tenant_list_for(user, *, search: str = ""):
    qs = Tenant.objects.visible_to(user)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    return qs


@dataclass(frozen=True)
class SupportOverview:
    """The support overview's table: one row per tenant (its own figures and each app's
    column values), the columns the apps registered, and what has no row of its own."""

    rows: list[dict[str, Any]]
    columns: list[SupportColumn]
    unknown_rejections: int
    snapshot: dict | None


def support_overview_get(*, user, search: str = "") -> SupportOverview:
    """Every tenant `user` may see at a glance: the apps' figures per tenant
    (`tenants.registry.support_columns`), webhook rejections (7 d), open alerts and Twilio
    reachability (last cached check). Each figure is collected for all tenants at once, not
    per row, so the page costs a few grouped queries however many tenants there are. Worst
    first by each app's order (e.g. failure rate, tenants without one last), then by name."""
    columns = list(support_columns)
    now = timezone.now()
    collected = {column.key: column.collect(now=now) for column in columns}
    rejections = webhook_rejections_by_tenant(days=7)
    open_alerts = alerts_open_by_tenant()
    snapshot = reachability_snapshot()
    reachability = (snapshot or {}).get("tenants", {})
    rows = []
    for t in tenant_list_for(user, search=search):
        values = {c.key: collected[c.key][t.id] if t.id in collected[c.key] else c.empty() for c in columns}
        row = {"tenant": t, **values, "rejected": rejections.get(t.id, 0)}
        row |= {"alerts": open_alerts.get(t.id, []), "twilio": reachability.get(t.slug)}
        row["cells"] = [(c.cell_template_name, values[c.key]) for c in columns]
        rows.append(row)
    rows.sort(key=lambda r: (*(c.sort_key(r[c.key]) for c in columns if c.sort_key), r["tenant"].name))
    return SupportOverview(rows=rows, columns=columns, unknown_rejections=rejections.get(None, 0), snapshot=snapshot)
