"""The Numbers page of a tenant: synced numbers with their webhook drift, sync, fix, buy, release.

Reads go through `tenants.numbers` (scoped to `request.tenant`); every write is an admin's
(TenantMiddleware already refused read-only roles) and goes through a service that calls
Twilio and audits. Support staff see the page read-only with numbers masked. The "look up a
customer's number" boxes come from the apps (`tenants.registry.number_lookups`).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import numbers
from .http import audit_context
from .models import PhoneNumber
from .phones import form_phone_region_set, tenant_phone_region
from .registry import number_lookups
from .scoping import get_scoped_or_404
from .twilio import TwilioError
from .views import require_admin


class NumberFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search", widget=forms.TextInput(attrs={"type": "search"}))
    capability = forms.ChoiceField(
        required=False, choices=[("", "Any capability"), ("sms", "SMS"), ("mms", "MMS"), ("voice", "Voice")]
    )
    drift = forms.BooleanField(required=False, label="Drift only")


class AvailableSearchForm(forms.Form):
    country = forms.ChoiceField(choices=[("US", "United States"), ("CA", "Canada")], initial="US")
    area_code = forms.RegexField(regex=r"^[2-9]\d\d$", required=False, max_length=3, label="Area code")
    sms = forms.BooleanField(required=False, initial=True, label="SMS")
    mms = forms.BooleanField(required=False, label="MMS")
    voice = forms.BooleanField(required=False, label="Voice")


@require_GET
def number_list(request):
    """Synced numbers with drift shown per number, plus the apps' number lookup boxes."""
    tenant = request.tenant
    lookups = []
    for lookup in number_lookups:
        form = lookup.form_class(request.GET if lookup.param in request.GET else None)
        form_phone_region_set(form, region=tenant_phone_region(tenant))
        if form.is_bound and form.is_valid():
            return redirect(lookup.target(tenant=tenant, access=request.tenant_access, cleaned_data=form.cleaned_data))
        lookups.append((lookup, form))
    looking_up = any(form.is_bound for _, form in lookups)
    filters = NumberFilterForm((request.GET or None) if not looking_up else None)
    data = filters.cleaned_data if filters.is_bound and filters.is_valid() else {}
    qs = numbers.numbers_list(tenant=tenant, search=data.get("q", ""), capability=data.get("capability", ""))
    rows = [(n, numbers.number_drift(n)) for n in qs[:500]]
    drifted = sum(1 for _, problems in rows if problems)
    if data.get("drift"):
        rows = [(n, problems) for n, problems in rows if problems]
    last_sync = max((n.synced_at for n, _ in rows), default=None)
    return render(
        request,
        "tenants/number_list.html",
        {
            "tenant": tenant,
            "rows": rows,
            "drifted": drifted,
            "filters": filters,
            "lookups": lookups,
            "last_sync": last_sync,
            "endpoints": numbers.webhook_urls(),
        },
    )


@require_POST
def number_sync(request):
    tenant = request.tenant
    try:
        report = numbers.numbers_sync(tenant=tenant, audit=audit_context(request))
    except TwilioError as exc:
        messages.error(request, f"Sync failed: {exc}")
    else:
        messages.success(request, f"Synced: {report}.")
    return redirect("number_list", tenant_slug=tenant.slug)


@require_POST
def number_fix_webhooks(request, sid: str):
    tenant = request.tenant
    number = get_scoped_or_404(PhoneNumber, tenant=tenant, sid=sid, released_at__isnull=True)
    try:
        changed = numbers.number_fix_webhooks(tenant=tenant, number=number, audit=audit_context(request))
    except TwilioError as exc:
        messages.error(request, f"Could not fix {number.phone_number}: {exc}")
    else:
        if changed:
            messages.success(request, f"{number.phone_number}: updated {', '.join(changed)}.")
        else:
            messages.info(request, f"{number.phone_number} already points at the portal.")
    return redirect("number_list", tenant_slug=tenant.slug)


@require_POST
def number_release(request, sid: str):
    tenant = request.tenant
    number = get_scoped_or_404(PhoneNumber, tenant=tenant, sid=sid, released_at__isnull=True)
    try:
        numbers.number_release(
            tenant=tenant, number=number, confirm=request.POST.get("confirm", ""), audit=audit_context(request)
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except TwilioError as exc:
        messages.error(request, f"Could not release {number.phone_number}: {exc}")
    else:
        messages.success(request, f"{number.phone_number} was released.")
    return redirect("number_list", tenant_slug=tenant.slug)


@require_http_methods(["GET", "POST"])
def number_buy(request):
    """Admins search Twilio's available numbers (GET) and buy one (POST)."""
    require_admin(request)
    tenant = request.tenant
    if request.method == "POST":
        phone = request.POST.get("phone_number", "")
        try:
            number = numbers.number_buy(tenant=tenant, phone_number=phone, audit=audit_context(request))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("number_buy", tenant_slug=tenant.slug)
        except TwilioError as exc:
            messages.error(request, f"Could not buy {phone}: {exc}")
            return redirect("number_buy", tenant_slug=tenant.slug)
        messages.success(request, f"Bought {number.phone_number}; its webhooks point at the portal.")
        return redirect("number_list", tenant_slug=tenant.slug)
    form = AvailableSearchForm(request.GET or None)
    results, error = None, None
    if form.is_bound and form.is_valid():
        try:
            results = numbers.numbers_search_available(
                tenant=tenant,
                country=form.cleaned_data["country"],
                area_code=form.cleaned_data["area_code"] or None,
                sms=form.cleaned_data["sms"],
                mms=form.cleaned_data["mms"],
                voice=form.cleaned_data["voice"],
            )
        except TwilioError as exc:
            error = exc
    return render(
        request, "tenants/number_buy.html", {"tenant": tenant, "form": form, "results": results, "error": error}
    )
