from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .forms import MembershipForm, TenantSettingsForm
from .models import Membership, Tenant, is_support
from .selectors import (
    audit_event_list,
    membership_list,
    tenant_list_for,
    webhook_rejection_list,
    webhook_rejections_by_tenant,
)
from .services import membership_remove, membership_set, tenant_settings_update


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
    return render(request, "tenants/dashboard.html", {"tenant": request.tenant})


def tenant_settings(request):
    tenant = request.tenant
    # The form validates a copy, so the service can see what actually changed.
    form = TenantSettingsForm(request.POST or None, instance=Tenant.objects.get(pk=tenant.pk))
    if request.method == "POST" and form.is_valid():
        changed = tenant_settings_update(
            tenant=tenant, changes={k: form.cleaned_data[k] for k in form.fields}, request=request
        )
        messages.success(request, f"Saved: {', '.join(changed)}." if changed else "Nothing changed.")
        return redirect("tenant_settings", tenant_slug=tenant.slug)
    return render(
        request,
        "tenants/settings.html",
        {"tenant": tenant, "form": form, "rejections": webhook_rejection_list(tenant=tenant)},
    )


def tenant_members(request):
    tenant = request.tenant
    form = MembershipForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _, outcome = membership_set(
            user=form.cleaned_data["username"], tenant=tenant, role=form.cleaned_data["role"], request=request
        )
        messages.success(request, f"{form.cleaned_data['username'].username}: membership {outcome}.")
        return redirect("tenant_members", tenant_slug=tenant.slug)
    return render(
        request, "tenants/members.html", {"tenant": tenant, "members": membership_list(tenant=tenant), "form": form}
    )


@require_POST
def tenant_member_remove(request, membership_id: int):
    membership = get_object_or_404(Membership, pk=membership_id, tenant=request.tenant)
    if membership.user_id == request.user.id:
        messages.error(request, "You cannot remove yourself; ask another admin.")
    else:
        membership_remove(membership=membership, request=request)
        messages.success(request, f"Removed {membership.user.username}.")
    return redirect("tenant_members", tenant_slug=request.tenant.slug)


@require_GET
def tenant_audit_log(request):
    require_admin(request)
    return render(
        request, "tenants/audit_log.html", {"tenant": request.tenant, "events": audit_event_list(tenant=request.tenant)}
    )


@require_GET
def support_overview(request):
    """Every tenant at a glance for support staff and operators, with webhook rejections."""
    if not (request.user.is_superuser or is_support(request.user)):
        raise PermissionDenied("Support staff only.")
    rejections = webhook_rejections_by_tenant(days=7)
    rows = [
        (t, rejections.get(t.id, 0)) for t in tenant_list_for(request.user, search=request.GET.get("q", "").strip())
    ]
    return render(
        request,
        "tenants/support_overview.html",
        {"rows": rows, "unknown_rejections": rejections.get(None, 0), "q": request.GET.get("q", "")},
    )


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
    from commsportal.celery import app

    started = time.monotonic()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            transport = conn.transport_cls
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1), "transport": str(transport)}


@login_not_required
@never_cache
@require_GET
def healthz(request):
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks, "debug": settings.DEBUG},
        status=200 if healthy else 503,
    )
