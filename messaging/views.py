"""Messaging pages of a tenant: message log, opt-outs, consent, number history, revocation
review queue, keywords, sending policy.

Every view works on `request.tenant` (set by TenantMiddleware, which has already refused
writes from read-only roles) and reads only through `for_tenant` / `get_scoped_or_404`, so
another tenant's row is a 404. Support staff see numbers masked: in templates through
`{% phone %}`, in links through `number_url` (an opaque token, never the number), in exports
here.
"""

from __future__ import annotations

import csv
from datetime import UTC, timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tenants.exports import spreadsheet_safe
from tenants.middleware import support_action
from tenants.phones import phone_mask
from tenants.scoping import get_scoped_or_404
from tenants.services import audit_record
from tenants.twilio_errors import explain
from tenants.views import require_admin

from . import imports, selectors, services, statuses
from .filters import MessageFilter
from .forms import (
    ConsentCaptureForm,
    ConsentSearchForm,
    CsvImportForm,
    OptOutChangeForm,
    OptOutSearchForm,
    RevocationDecisionForm,
    SendingPolicyForm,
    TenantKeywordForm,
    UnmaskForm,
    region_windows_text,
)
from .gate import region_name, region_rules, sending_policy_get, statutory_rules
from .keywords import DEFAULT_HELP_KEYWORDS, DEFAULT_OPT_IN_KEYWORDS, DEFAULT_OPT_OUT_KEYWORDS
from .models import ConsentEvent, OptOutEvent, RevocationReview, SendingPolicy, TenantKeyword, disclosure_hash
from .number_refs import number_from_ref
from .pagination import keyset_page

# --- Message log -------------------------------------------------------------------------------


@require_GET
def message_list(request):
    tenant = request.tenant
    filters = MessageFilter(request.GET or None, queryset=selectors.message_list(tenant=tenant))
    if filters.is_bound and not filters.is_valid():
        qs = filters.queryset.none()
    else:
        qs = filters.qs
    page = keyset_page(qs, cursor=request.GET.get("cursor"))
    return render(
        request,
        "messaging/message_list.html",
        {
            "tenant": tenant,
            "filter_form": filters.form,
            "page": page,
            "filtered": any(v for k, v in request.GET.items() if k != "cursor"),
        },
    )


@require_GET
def message_detail(request, message_id: int):
    tenant = request.tenant
    message, events = selectors.message_detail(tenant=tenant, message_id=message_id)
    review = RevocationReview.objects.for_tenant(tenant).filter(message=message).first()
    return render(
        request,
        "messaging/message_detail.html",
        {
            "tenant": tenant,
            "message": message,
            "events": events,
            "error_explanation": explain(message.error_code),
            "review": review,
            "message_final": message.status in statuses.FINAL_STATUSES,
        },
    )


# --- Opt-outs ----------------------------------------------------------------------------------


@require_GET
def opt_out_list(request):
    tenant = request.tenant
    form = OptOutSearchForm(request.GET or None)
    search, state = "", ""
    if form.is_bound and form.is_valid():
        search = form.cleaned_data["q"][1] if form.cleaned_data["q"] else ""
        state = form.cleaned_data["state"]
    qs = selectors.opt_out_current_list(tenant=tenant, search=search, state=state)
    if form.is_bound and not form.is_valid():
        qs = qs.none()
    page = keyset_page(qs, cursor=request.GET.get("cursor"))
    context = {"tenant": tenant, "form": form, "page": page, "searched": bool(search or state)}
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
        services.opt_out_admin_change(
            tenant=tenant, phone=phone, action=action, reason=form.cleaned_data["reason"], request=request
        )
        if action == OptOutEvent.Action.OPT_OUT:
            messages.success(request, f"{phone} is opted out: nothing more will be sent to it.")
        else:
            messages.warning(
                request,
                f"{phone} is opted back in here. If the person had texted STOP, Twilio keeps blocking sends "
                "(error 21610) until they text START to that sender. Marketing needs a fresh consent.",
            )
        return redirect("number_history", tenant_slug=tenant.slug, number=phone)
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
                report = apply(tenant=tenant, content=content, request=request, filename=filename)
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


@require_GET
def consent_list(request):
    tenant = request.tenant
    form = ConsentSearchForm(request.GET or None)
    filters: dict = {}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if data["q"]:
            filters["phone" if data["q"][0] == "phone" else "phone_suffix"] = data["q"][1]
        filters.update({k: data[k] for k in ("purpose", "action", "method") if data[k]})
    qs = selectors.consent_event_list(tenant=tenant, **filters)
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
    if request.method == "POST" and form.is_valid():
        event = services.consent_capture(tenant=tenant, request=request, **form.cleaned_data)
        messages.success(request, f"Consent {event.action} recorded for {event.phone} ({event.get_purpose_display()}).")
        if event.action == ConsentEvent.Action.GRANTED and selectors.is_opted_out(tenant=tenant, phone=event.phone):
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


# --- Numbers -----------------------------------------------------------------------------------


HISTORY_COLUMNS = (
    "occurred_at_utc",
    "category",
    "action",
    "phone",
    "purpose",
    "source",
    "sender",
    "text",
    "actor",
    "disclosure_version",
    "disclosure_sha256",
    "ip_address",
    "user_agent",
    "reference",
    "alert",
)


@require_GET
def number_history(request, number: str):
    """Everything the portal knows about one number: a printable, exportable consent proof."""
    tenant = request.tenant
    phone = number_from_ref(number, tenant=tenant)
    history = selectors.number_history(tenant=tenant, phone=phone)
    export = request.GET.get("format")
    if export in ("csv", "json"):
        return _history_export(request, history, export)
    masked = request.tenant_access.masks_numbers
    return render(
        request,
        "messaging/number_history.html",
        {
            "tenant": tenant,
            "phone": phone,
            "history": history,
            "timeline": history.timeline(),
            "consent_by_purpose": sorted(history.consent_by_purpose.values(), key=lambda e: e.purpose),
            "unmask_form": UnmaskForm() if masked else None,
            "generated_at": timezone.now(),
        },
    )


def _history_export(request, history, export: str):
    tenant = request.tenant
    masked = request.tenant_access.masks_numbers
    show = phone_mask if masked else (lambda value: value)
    rows = [
        {
            "occurred_at_utc": e.at.astimezone(UTC).isoformat(),
            "category": e.category,
            "action": e.action,
            "phone": show(history.phone),
            "purpose": e.purpose,
            "source": e.source,
            "sender": show(e.sender) if e.sender.startswith("+") else e.sender,
            "text": e.text,
            "actor": e.actor,
            "disclosure_version": e.disclosure_version,
            "disclosure_sha256": e.disclosure_sha256,
            "ip_address": e.ip_address,
            "user_agent": e.user_agent,
            "reference": e.reference,
            "alert": "yes" if e.alert else "",
        }
        for e in history.timeline()
    ]
    # Personal data leaving the portal, whoever takes it (a member, or support staff reading
    # another tenant's data): on the record, the number masked like every audit target.
    audit_record(
        action="export.number_history",
        tenant=tenant,
        request=request,
        target=phone_mask(history.phone),
        details={"format": export, "rows": len(rows), "masked": masked},
    )
    filename = f"number-history-{tenant.slug}-{history.phone[-4:]}-{timezone.now():%Y%m%d}"
    if export == "json":
        response = JsonResponse(
            {
                "tenant": tenant.slug,
                "phone": show(history.phone),
                "generated_at": timezone.now().isoformat(),
                "opted_out": history.is_opted_out,
                "events": rows,
            },
            json_dumps_params={"indent": 2},
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}.json"'
        response["Cache-Control"] = "no-store"  # personal data: never kept by a browser or proxy
        return response
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    response["Cache-Control"] = "no-store"  # personal data: never kept by a browser or proxy
    writer = csv.DictWriter(response, fieldnames=HISTORY_COLUMNS)
    writer.writeheader()
    writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in rows)
    return response


@support_action
@never_cache
@require_POST
def number_unmask(request, number: str):
    """Support staff see one full number, once, after writing down why. Audited."""
    if not request.tenant_access.masks_numbers:
        raise PermissionDenied("You already see full numbers: only support staff unmask.")
    tenant = request.tenant
    phone = number_from_ref(number, tenant=tenant)
    form = UnmaskForm(request.POST)
    revealed = None
    if form.is_valid():
        audit_record(
            action="support.unmask",
            tenant=tenant,
            request=request,
            target=phone_mask(phone),
            reason=form.cleaned_data["reason"],
        )
        revealed = phone
    return render(
        request,
        "messaging/number_unmask.html",
        {"tenant": tenant, "phone": phone, "revealed": revealed, "form": form, "number": number},
    )


# --- Revocation review queue -------------------------------------------------------------------


@require_GET
def revocation_list(request):
    tenant = request.tenant
    open_reviews, decided = selectors.revocation_review_lists(tenant=tenant)
    now = timezone.now()
    return render(
        request,
        "messaging/revocation_list.html",
        {
            "tenant": tenant,
            "open_reviews": open_reviews,
            "decided": decided,
            "overdue": sum(1 for r in open_reviews if r.deadline_at < now),
            "now": now,
            "soon": now + timedelta(days=2),
            "form": RevocationDecisionForm(),
        },
    )


@require_POST
def revocation_confirm(request, review_id: int):
    from .inbound import revocation_confirm as confirm  # lazily: the webhook side owns it

    review = get_scoped_or_404(RevocationReview, tenant=request.tenant, pk=review_id)
    form = RevocationDecisionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        confirm(tenant=request.tenant, review=review, actor=request.user, note=note, request=request)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Confirmed: {review.phone} is opted out and its consents revoked.")
    return redirect("revocation_list", tenant_slug=request.tenant.slug)


@require_POST
def revocation_dismiss(request, review_id: int):
    from .inbound import revocation_dismiss as dismiss

    review = get_scoped_or_404(RevocationReview, tenant=request.tenant, pk=review_id)
    form = RevocationDecisionForm(request.POST)
    note = (form.cleaned_data["note"] if form.is_valid() else "").strip()
    if not note:
        messages.error(request, "A dismissal needs a note: say why this message is not a revocation.")
        return redirect("revocation_list", tenant_slug=request.tenant.slug)
    try:
        dismiss(tenant=request.tenant, review=review, actor=request.user, note=note, request=request)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Dismissed: {review.phone} stays reachable. Your note is on record.")
    return redirect("revocation_list", tenant_slug=request.tenant.slug)


# --- Keywords ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def keyword_list(request):
    tenant = request.tenant
    form = TenantKeywordForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        keyword = services.tenant_keyword_add(
            tenant=tenant, kind=form.cleaned_data["kind"], word=form.cleaned_data["word"], request=request
        )
        messages.success(request, f"Added {keyword.word} ({keyword.get_kind_display()}).")
        return redirect("keyword_list", tenant_slug=tenant.slug)
    keywords = list(selectors.tenant_keyword_list(tenant=tenant))
    groups = [
        (kind, label, defaults, [k for k in keywords if k.kind == kind])
        for (kind, label), defaults in zip(
            TenantKeyword.Kind.choices,
            (DEFAULT_OPT_OUT_KEYWORDS, DEFAULT_OPT_IN_KEYWORDS, DEFAULT_HELP_KEYWORDS),
            strict=True,
        )
    ]
    return render(request, "messaging/keyword_list.html", {"tenant": tenant, "form": form, "groups": groups})


@require_POST
def keyword_remove(request, keyword_id: int):
    keyword = get_scoped_or_404(TenantKeyword, tenant=request.tenant, pk=keyword_id)
    services.tenant_keyword_remove(tenant=request.tenant, keyword=keyword, request=request)
    messages.success(request, f"Removed {keyword.word}.")
    return redirect("keyword_list", tenant_slug=request.tenant.slug)


# --- Sending policy ----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def sending_policy(request):
    """Everyone with access reads the policy and what the law adds to it; admins change it."""
    tenant = request.tenant
    policy = sending_policy_get(tenant=tenant)
    policy.refresh_from_db()  # a row created just now still holds its defaults as strings
    form = None
    if request.method == "POST":
        require_admin(request)  # TenantMiddleware refuses read-only roles first; don't rely on it alone
    if request.tenant_access.can_write and request.method == "GET":
        form = SendingPolicyForm(instance=SendingPolicy.objects.get(pk=policy.pk))
    elif request.tenant_access.can_write:
        # Validated and saved under the row's lock: two admins saving at once are checked one
        # after the other, each against what the other saved (two edits that are each fine
        # alone, opening 19:00 and closing 10:00, must not make a window that never opens).
        # The form validates a copy, so the service can see what actually changed.
        changed = None
        try:
            with transaction.atomic():
                locked = SendingPolicy.objects.select_for_update().get(pk=policy.pk)
                form = SendingPolicyForm(request.POST, instance=locked)
                if form.is_valid():
                    # Only what this admin edited: the form's other values may predate another admin's save.
                    changed = services.sending_policy_update(
                        tenant=tenant, changes=form.changes(), actor=request.user, request=request
                    )
        except ValidationError as exc:  # the service's own check under the lock; nothing was written
            changed = None
            form.add_error(None, exc)
        if changed is not None:
            if changed:
                labels = [str(form.fields[name].label) for name in changed]
                messages.success(request, f"Sending policy saved: {'; '.join(labels)}.")
            else:
                messages.info(request, "Nothing changed: the sending policy is as it was.")
            return redirect("sending_policy", tenant_slug=tenant.slug)
    rules = statutory_rules()
    # The regions where the law or the tenant's own lines make the rules differ from the default.
    regions = sorted({r.region for r in rules} | {str(k).upper() for k in policy.region_windows or {}})
    in_force = []
    for region in regions:
        applied = region_rules(policy=policy, region=region)
        # Settings saved before the form refused them, which the gate sets aside here (and logs).
        problems = []
        if applied.policy_window_disjoint:
            problems.append(
                f"Your window {policy.quiet_start:%H:%M}–{policy.quiet_end:%H:%M} misses the law's "
                f"{applied.law[0]:%H:%M}–{applied.law[1]:%H:%M} here: the gate sends in the law's window instead, "
                "outside the hours you chose. Change the window."
            )
        for line in applied.lines_ignored:
            problems.append(f"Your line for {line} would close the window here: the gate ignores it. Change it.")
        in_force.append(
            {
                "region": region,
                "name": region_name(region) or region,
                "window": applied.window,
                "cap": applied.cap,
                "problems": problems,
            }
        )
    return render(
        request,
        "messaging/sending_policy.html",
        {
            "tenant": tenant,
            "policy": policy,
            "form": form,
            "region_lines": region_windows_text(policy.region_windows),
            "statutory_rules": rules,
            "in_force": in_force,
            "set_aside": any(row["problems"] for row in in_force),
            # Saved before the form and the service refused it (a policy row from elsewhere).
            "never_opens": not policy.quiet_start < policy.quiet_end,
        },
    )
