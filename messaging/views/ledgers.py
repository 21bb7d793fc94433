"""Ledger pages of a tenant: opt-outs and consent, listed, changed and imported from CSV.

Every messaging view works on `request.tenant` (set by TenantMiddleware, which has already refused
writes from read-only roles) and reads only through `for_tenant` / `get_scoped_or_404`, so
another tenant's row is a 404. Support staff see numbers masked: in templates through
`{% phone %}`, in links through `number_url` (an opaque token, never the number), in exports
here.
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import QuerySet
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from tenants.http import audit_context
from tenants.pagination import keyset_page
from tenants.phones import form_phone_region_set, tenant_phone_region
from tenants.scoping import get_scoped_or_404
from tenants.views import require_admin

from ..forms.ledgers import ConsentCaptureForm, ConsentSearchForm, CsvImportForm, OptOutChangeForm, OptOutSearchForm
from ..ledgers import imports, services
from ..ledgers.reachability import number_is_opted_out
from ..ledgers.selectors import consent_event_list, opt_out_current_list
from ..ledgers.services import opt_out_admin_change
from ..models import ConsentEvent, OptOutEvent, disclosure_hash
from ..number_refs import number_ref

# --- Opt-outs ----------------------------------------------------------------------------------


def opt_out_filtered(*, tenant, params) -> tuple[OptOutSearchForm, QuerySet[OptOutEvent]]:
    """The search form bound to `params` and each number's current opt-out state it selects
    (none while the form is invalid), for the list page and its export alike."""
    form = OptOutSearchForm(params or None)
    form_phone_region_set(form, region=tenant_phone_region(tenant))
    search, state = "", ""
    if form.is_bound and form.is_valid():
        search = form.cleaned_data["q"][1] if form.cleaned_data["q"] else ""
        state = form.cleaned_data["state"]
    qs = opt_out_current_list(tenant=tenant, search=search, state=state)
    if form.is_bound and not form.is_valid():
        qs = qs.none()
    return form, qs


@require_GET
def opt_out_list(request):
    tenant = request.tenant
    form, qs = opt_out_filtered(tenant=tenant, params=request.GET)
    page = keyset_page(qs, cursor=request.GET.get("cursor"))
    searched = form.is_bound and form.is_valid() and bool(form.cleaned_data["q"] or form.cleaned_data["state"])
    context = {"tenant": tenant, "form": form, "page": page, "searched": searched}
    if request.tenant_access.can_write:
        context["change_form"] = OptOutChangeForm(tenant=tenant)
    return render(request, "messaging/opt_out_list.html", context)


@require_http_methods(["GET", "POST"])
def opt_out_change(request):
    """Opt a number out, or back in, with a required reason (admins)."""
    require_admin(request)
    tenant = request.tenant
    initial = {k: request.GET[k] for k in ("phone", "action") if k in request.GET}
    form = OptOutChangeForm(request.POST or None, tenant=tenant, initial=initial)
    if request.method == "POST" and form.is_valid():
        phone, action = form.cleaned_data["phone"], form.cleaned_data["action"]
        opt_out_admin_change(
            tenant=tenant, phone=phone, action=action, reason=form.cleaned_data["reason"], audit=audit_context(request)
        )
        if action == OptOutEvent.Action.OPT_OUT:
            messages.success(request, f"{phone} is opted out: nothing more will be sent to it.")
        else:
            messages.warning(
                request,
                f"{phone} is opted back in here. If the person had texted STOP, Twilio keeps blocking sends "
                "(error 21610) until they text START to that sender. Marketing needs a fresh consent.",
            )
        return redirect("number_history", tenant_slug=tenant.slug, number=number_ref(phone, tenant=tenant))
    return render(request, "messaging/opt_out_change.html", {"tenant": tenant, "form": form})


@require_http_methods(["GET", "POST"])
def opt_out_import(request):
    require_admin(request)
    return _csv_import(
        request,
        kind="opt_out",
        check=imports.opt_out_import_check,
        apply=imports.opt_out_import_apply,
        template="messaging/opt_out_import.html",
        done_url="opt_out_list",
        noun="opt-out",
        columns=imports.OPT_OUT_COLUMNS,
    )


def _csv_import(request, *, kind, check, apply, template, done_url, noun, columns):
    """Shared flow of the CSV imports: dry run (report, stash the file) or real import."""
    tenant = request.tenant
    form = CsvImportForm(request.POST or None, request.FILES or None)
    report, token, filename = None, "", ""
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload:
            content, filename = upload.read(), upload.name
        else:
            stashed = imports.upload_fetch(
                tenant=tenant, user=request.user, kind=kind, token=form.cleaned_data["upload"]
            )
            if stashed is None:
                form.add_error("file", "The checked file has expired: choose it again.")
            else:
                content, filename = stashed
        if not form.errors:
            if form.cleaned_data["dry_run"]:
                report = check(tenant=tenant, content=content)
                if report.ok and report.rows:
                    token = imports.upload_stash(
                        tenant=tenant, user=request.user, kind=kind, content=content, filename=filename
                    )
            else:
                report = apply(tenant=tenant, content=content, audit=audit_context(request), filename=filename)
                if report.ok:
                    if form.cleaned_data["upload"]:
                        imports.upload_discard(
                            tenant=tenant, user=request.user, kind=kind, token=form.cleaned_data["upload"]
                        )
                    messages.success(
                        request,
                        f"Imported {report.imported} {noun} record{'s' if report.imported != 1 else ''} from "
                        f"{filename}; {len(report.skipped)} row{'s' if len(report.skipped) != 1 else ''} skipped.",
                    )
                    return redirect(done_url, tenant_slug=tenant.slug)
    return render(
        request,
        template,
        {
            "tenant": tenant,
            "form": form,
            "report": report,
            "token": token,
            "filename": filename,
            "columns": columns,
            "dry_run": bool(form.is_bound and form.is_valid() and form.cleaned_data["dry_run"]),
        },
    )


# --- Consent -----------------------------------------------------------------------------------


def consent_search(*, tenant, params) -> tuple[ConsentSearchForm, dict]:
    """The search form bound to `params` and the selector filters it asks for, for the list
    page (every event) and its export (each number's current state per purpose) alike."""
    form = ConsentSearchForm(params or None)
    form_phone_region_set(form, region=tenant_phone_region(tenant))
    filters: dict = {}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if data["q"]:
            filters["phone" if data["q"][0] == "phone" else "phone_suffix"] = data["q"][1]
        filters.update({k: data[k] for k in ("purpose", "action", "method") if data[k]})
    return form, filters


@require_GET
def consent_list(request):
    tenant = request.tenant
    form, filters = consent_search(tenant=tenant, params=request.GET)
    qs = consent_event_list(tenant=tenant, **filters)
    if form.is_bound and not form.is_valid():
        qs = qs.none()
    page = keyset_page(qs, cursor=request.GET.get("cursor"), field="captured_at")
    return render(
        request,
        "messaging/consent_list.html",
        {"tenant": tenant, "form": form, "page": page, "searched": bool(filters)},
    )


@require_GET
def consent_detail(request, event_id: int):
    tenant = request.tenant
    event = get_scoped_or_404(
        ConsentEvent.objects.select_related("disclosure", "captured_by", "opt_out_event"), tenant=tenant, pk=event_id
    )
    disclosure = event.disclosure
    return render(
        request,
        "messaging/consent_detail.html",
        {
            "tenant": tenant,
            "event": event,
            "disclosure": disclosure,
            "hash_ok": disclosure is not None and disclosure.sha256 == disclosure_hash(disclosure.text),
        },
    )


@require_http_methods(["GET", "POST"])
def consent_capture(request):
    require_admin(request)
    tenant = request.tenant
    form = ConsentCaptureForm(request.POST or None)
    form_phone_region_set(form, region=tenant_phone_region(tenant))
    if request.method == "POST" and form.is_valid():
        event = services.consent_capture(tenant=tenant, audit=audit_context(request), **form.cleaned_data)
        messages.success(request, f"Consent {event.action} recorded for {event.phone} ({event.get_purpose_display()}).")
        if event.action == ConsentEvent.Action.GRANTED and number_is_opted_out(tenant=tenant, phone=event.phone):
            messages.warning(
                request,
                "This number is still opted out: consent does not lift an opt-out. The person must text START, "
                "or an admin must opt the number back in.",
            )
        return redirect("consent_detail", tenant_slug=tenant.slug, event_id=event.pk)
    return render(request, "messaging/consent_capture.html", {"tenant": tenant, "form": form})


@require_http_methods(["GET", "POST"])
def consent_import(request):
    require_admin(request)
    return _csv_import(
        request,
        kind="consent",
        check=imports.consent_import_check,
        apply=imports.consent_import_apply,
        template="messaging/consent_import.html",
        done_url="consent_list",
        noun="consent",
        columns=imports.CONSENT_COLUMNS,
    )
