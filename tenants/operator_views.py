"""Platform operator pages under /operator/: superusers only (everyone else gets 403).

A tenant's life (create on a subaccount, suspend, reactivate, close), its credentials
(API key and auth token rotation), its retention settings and GDPR erasure of a number. Each
page calls one service from tenants/lifecycle.py or tenants/retention.py; a Twilio refusal is
shown with its explanation and changes nothing. Secrets are never rendered, not even masked.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import lifecycle, retention
from .http import audit_context
from .models import Tenant
from .operator_forms import CloseForm, ErasureForm, ReasonForm, RetentionForm, TenantCreateForm
from .selectors import audit_event_list, tenant_list_all, tenant_stored_get
from .twilio import TwilioError


def operator_required(view):
    """Superusers only. Checked before anything is looked up, so a refused user learns nothing
    (not even whether a tenant slug exists). Anonymous users never get here: the login
    middleware sends them to the login page first."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_superuser:
            raise PermissionDenied("Platform operators only.")
        return view(request, *args, **kwargs)

    return wrapper


def _twilio_refused(exc: TwilioError) -> str:
    return f"Twilio refused: {exc} Nothing was changed."


def _attempt(request, call, success: str) -> bool:
    """Run a service; show its outcome as a message. True when it succeeded."""
    try:
        call()
    except TwilioError as exc:
        messages.error(request, _twilio_refused(exc))
        return False
    except lifecycle.LifecycleError as exc:
        messages.error(request, str(exc))
        return False
    messages.success(request, success)
    return True


@operator_required
@require_GET
def tenant_list(request):
    tenants = tenant_list_all()
    return render(request, "tenants/operator_list.html", {"tenants": tenants, "create_form": TenantCreateForm()})


@operator_required
@require_http_methods(["GET", "POST"])
def tenant_create(request):
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            tenant, sub = lifecycle.tenant_create(
                slug=data["slug"],
                name=data["name"],
                audit=audit_context(request),
                fields={"timezone": data["timezone"]},
            )
        except TwilioError as exc:
            messages.error(request, _twilio_refused(exc))
        except (lifecycle.LifecycleError, ValidationError) as exc:
            messages.error(request, "; ".join(getattr(exc, "messages", [str(exc)])))
        else:
            verb = "Created" if sub.created else "Reused the existing"
            messages.success(request, f"{verb} subaccount {sub.sid} for {tenant.name}.")
            return redirect("operator:tenant_detail", slug=tenant.slug)
    return render(request, "tenants/operator_create.html", {"form": form})


@operator_required
@require_GET
def tenant_detail(request, slug: str):
    tenant = get_object_or_404(Tenant, slug=slug)
    return render(
        request,
        "tenants/operator_tenant.html",
        {
            "tenant": tenant,
            "reason_form": ReasonForm(),
            "close_form": CloseForm(),
            "retention_form": RetentionForm(instance=tenant),
            "events": audit_event_list(tenant=tenant, limit=25),
        },
    )


def _status_view(action: str):
    service = {
        "suspend": lifecycle.tenant_suspend,
        "reactivate": lifecycle.tenant_reactivate,
    }[action]

    @operator_required
    @require_POST
    def view(request, slug: str):
        tenant = get_object_or_404(Tenant, slug=slug)
        form = ReasonForm(request.POST)
        reason = form.cleaned_data["reason"] if form.is_valid() else ""
        _attempt(
            request,
            lambda: service(tenant=tenant, audit=audit_context(request), reason=reason),
            f"{tenant.name}: {lifecycle.PAST_TENSE[action]} at Twilio and here.",
        )
        return redirect("operator:tenant_detail", slug=tenant.slug)

    view.__name__ = f"tenant_{action}"
    return view


tenant_suspend = _status_view("suspend")
tenant_reactivate = _status_view("reactivate")


@operator_required
@require_POST
def tenant_close(request, slug: str):
    tenant = get_object_or_404(Tenant, slug=slug)
    form = CloseForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Type the tenant's slug “{tenant.slug}” to confirm closing it.")
        return redirect("operator:tenant_detail", slug=tenant.slug)
    _attempt(
        request,
        lambda: lifecycle.tenant_close(
            tenant=tenant,
            confirm_slug=form.cleaned_data["confirm_slug"],
            audit=audit_context(request),
            reason=form.cleaned_data["reason"],
        ),
        f"{tenant.name} is closed: its numbers are released and sending has stopped. Its records stay readable.",
    )
    return redirect("operator:tenant_detail", slug=tenant.slug)


@operator_required
@require_POST
def api_key_rotate(request, slug: str):
    tenant = get_object_or_404(Tenant, slug=slug)
    try:
        result = lifecycle.api_key_rotate(tenant=tenant, audit=audit_context(request))
    except TwilioError as exc:
        messages.error(request, _twilio_refused(exc))
    except lifecycle.LifecycleError as exc:  # RotationError included: rolled back
        messages.error(request, str(exc))
    else:
        if result.old_key_revoked:
            old = f"; the old key {result.old_key_sid} is revoked" if result.old_key_sid else ""
            messages.success(request, f"Now using API key {result.new_key_sid}{old}.")
        else:
            messages.warning(
                request,
                f"Now using API key {result.new_key_sid}, but the old key {result.old_key_sid} could not be "
                "revoked: delete it in the Twilio console.",
            )
    return redirect("operator:tenant_detail", slug=tenant.slug)


def _auth_token_view(step: str):
    service, success = {
        "start": (
            lifecycle.auth_token_rotation_start,
            "Secondary auth token created: webhooks signed with either token are accepted until you promote it.",
        ),
        "promote": (
            lifecycle.auth_token_rotation_promote,
            "The new auth token is now the primary; the old one no longer works.",
        ),
        "cancel": (lifecycle.auth_token_rotation_cancel, "Rotation cancelled: the secondary token is deleted."),
    }[step]

    @operator_required
    @require_POST
    def view(request, slug: str):
        tenant = get_object_or_404(Tenant, slug=slug)
        _attempt(request, lambda: service(tenant=tenant, audit=audit_context(request)), success)
        return redirect("operator:tenant_detail", slug=tenant.slug)

    view.__name__ = f"auth_token_{step}"
    return view


auth_token_start = _auth_token_view("start")
auth_token_promote = _auth_token_view("promote")
auth_token_cancel = _auth_token_view("cancel")


@operator_required
@require_POST
def retention_update(request, slug: str):
    tenant = get_object_or_404(Tenant, slug=slug)
    form = RetentionForm(request.POST, instance=tenant_stored_get(tenant=tenant))
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    else:
        changed = retention.tenant_retention_update(
            tenant=tenant, **{k: form.cleaned_data[k] for k in form.fields}, audit=audit_context(request)
        )
        messages.success(request, f"Saved: {', '.join(changed)}." if changed else "Nothing changed.")
    return redirect("operator:tenant_detail", slug=tenant.slug)


@operator_required
@require_http_methods(["GET", "POST"])
def number_erase(request, slug: str):
    tenant = get_object_or_404(Tenant, slug=slug)
    form = ErasureForm(request.POST or None, initial={"at_twilio": tenant.redact_at_twilio})
    if request.method == "POST" and form.is_valid():
        result = retention.number_erase(
            tenant=tenant,
            phone=form.cleaned_data["phone"],
            reason=form.cleaned_data["reason"],
            audit=audit_context(request),
            at_twilio=form.cleaned_data["at_twilio"],
        )
        messages.success(
            request,
            f"Erased as {result.marker}: {result.summary} redacted. The number stays suppressed.",
        )
        for error in result.errors:
            messages.warning(request, error)
        return redirect("operator:number_erase", slug=tenant.slug)
    return render(request, "tenants/operator_erase.html", {"tenant": tenant, "form": form})
