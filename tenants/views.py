from __future__ import annotations

import csv
import time
from datetime import datetime

from celery import current_app
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .exports import safe_row
from .forms import TenantSettingsForm
from .http import audit_context
from .models import is_support
from .monitoring import reachability_snapshot, reachability_summary
from .registry import overview_panels
from .selectors import (
    support_overview_get,
    tenant_list_for,
    tenant_stored_get,
    webhook_rejection_list,
)
from .services import audit_record, tenant_settings_update


def require_admin(request) -> None:
    """Admin-only pages (reads included), e.g. the audit log."""
    if not request.tenant_access.can_write:
        raise PermissionDenied("Only this tenant's admins can open this page.")


@require_GET
def home(request):
    tenants = list(tenant_list_for(request.user, search=request.GET.get("q", "").strip())[:200])
    if len(tenants) == 1 and not request.GET.get("q") and not is_support(request.user):
        return redirect("tenant_dashboard", tenant_slug=tenants[0].slug)
    return render(request, "tenants/home.html", {"tenants": tenants, "q": request.GET.get("q", "")})


@require_GET
def tenant_dashboard(request):
    """One tenant at a glance: the panels the apps registered (`tenants.registry.overview_panels`,
    e.g. messaging's delivery statistics over ?range=24h|7d|30d), then the account."""
    context = {"tenant": request.tenant}
    panels = list(overview_panels)
    for panel in panels:
        context.update(panel.context(tenant=request.tenant, params=request.GET))
    return render(request, "tenants/dashboard.html", {**context, "panels": panels})


def tenant_settings(request):
    tenant = request.tenant
    # The form validates a copy, so the service can see what actually changed.
    form = TenantSettingsForm(request.POST or None, instance=tenant_stored_get(tenant=tenant))
    if request.method == "POST" and form.is_valid():
        changed = tenant_settings_update(
            tenant=tenant, changes={k: form.cleaned_data[k] for k in form.fields}, audit=audit_context(request)
        )
        messages.success(request, f"Saved: {', '.join(changed)}." if changed else "Nothing changed.")
        return redirect("tenant_settings", tenant_slug=tenant.slug)
    return render(
        request,
        "tenants/settings.html",
        {"tenant": tenant, "form": form, "rejections": webhook_rejection_list(tenant=tenant)},
    )


@require_GET
def support_overview(request):
    """Every tenant at a glance for support staff and operators: the apps' figures per tenant
    (`tenants.selectors.support_overview_get`, e.g. messaging's failure rate over 24 h, worst
    first), webhook rejections, open alerts and Twilio reachability. `?format=csv` downloads the
    same table (audited: a cross-tenant export)."""
    if not (request.user.is_superuser or is_support(request.user)):
        raise PermissionDenied("Support staff only.")
    overview = support_overview_get(user=request.user, search=request.GET.get("q", "").strip())
    rows, columns = overview.rows, overview.columns
    if request.GET.get("format") == "csv":
        return _support_overview_csv(request, rows, columns)
    summary = reachability_summary(overview.snapshot)
    return render(
        request,
        "tenants/support_overview.html",
        {
            "rows": rows,
            "columns": columns,
            "column_count": SUPPORT_OVERVIEW_OWN_HTML_COLUMNS + sum(c.header_count for c in columns),
            "captions": [c.caption for c in columns if c.caption],
            "unknown_rejections": overview.unknown_rejections,
            "q": request.GET.get("q", ""),
            "twilio_summary": summary,
            "twilio_checked_at": datetime.fromisoformat(summary["checked_at"]) if summary["checked_at"] else None,
        },
    )


# tenants' own columns around the apps' ones; the CSV's names are a contract with its readers.
SUPPORT_OVERVIEW_LEADING_COLUMNS = ("tenant", "name", "account_sid", "status")
SUPPORT_OVERVIEW_TRAILING_COLUMNS = ("rejected_webhooks_7d", "open_alerts", "twilio")
SUPPORT_OVERVIEW_OWN_HTML_COLUMNS = 5  # tenant, status, rejected webhooks, alerts, Twilio


def _support_overview_csv(request, rows: list[dict], columns: list) -> HttpResponse:
    """The overview table as CSV: a cross-tenant export, so it is audited. It holds no phone
    numbers, only per-tenant counts, and never a secret."""
    audit_record(
        action="export.support_overview",
        tenant=None,
        audit=audit_context(request),
        target="all tenants",
        details={"format": "csv", "rows": len(rows), "q": request.GET.get("q", "").strip()},
    )
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="support-overview-{timezone.now():%Y%m%d-%H%M}.csv"'
    response["Cache-Control"] = "no-store"  # personal data: never kept by a browser or proxy
    writer = csv.writer(response)
    app_headers = [header for column in columns for header in column.csv_headers]
    writer.writerow([*SUPPORT_OVERVIEW_LEADING_COLUMNS, *app_headers, *SUPPORT_OVERVIEW_TRAILING_COLUMNS])
    for row in rows:
        tenant, twilio = row["tenant"], row["twilio"]
        writer.writerow(
            safe_row(
                [
                    tenant.slug,
                    tenant.name,
                    tenant.account_sid,
                    tenant.status,
                    *(value for c in columns for value in c.csv_values(row[c.key])),
                    row["rejected"],
                    " ".join(alert.kind for alert in row["alerts"]),
                    "unknown" if twilio is None else ("ok" if twilio.get("ok") else twilio.get("error") or "error"),
                ]
            )
        )
    return response


def _check_database() -> dict:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure is "down", reported by type only
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1), "vendor": connection.vendor}


def _check_broker() -> dict:
    """The project's Celery app is `current_app` once configured: tenants never imports it."""
    started = time.monotonic()
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            transport = conn.transport_cls
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1), "transport": str(transport)}


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """503 only when the portal itself is down (database or broker). Twilio's reachability per
    tenant is reported — `twilio_summary.status` down/degraded shows an outage at a glance — but
    never turns this into a 503: the portal is up and keeps recording and queueing. Reachability
    comes from the cache the beat task fills (tenants/monitoring.py), keyed by tenant slug only."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(c["ok"] for c in checks.values())
    snapshot = reachability_snapshot()
    return JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "checks": checks,
            "twilio_summary": reachability_summary(snapshot),
            "twilio": (snapshot or {}).get("tenants", {}),
            "debug": settings.DEBUG,
        },
        status=200 if healthy else 503,
    )
