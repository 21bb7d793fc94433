"""Portal pages for message templates and bulk sends (mounted under /t/<tenant>/).

Reads are open to every role of the tenant; writes are admin-only (the tenant middleware
already answers 403 to a read-only role's POST). Pages that only make sense to someone who may
write — the forms and the launch preview — answer 403 to read-only roles too.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from tenants.http import audit_context
from tenants.pagination import keyset_page
from tenants.scoping import get_scoped_or_404

from ..delivery.bulk.lifecycle import (
    bulk_cancel,
    bulk_launch,
    bulk_list,
    bulk_pause,
    bulk_progress,
    bulk_progress_many,
    bulk_resume,
)
from ..delivery.bulk.upload import LISTED_ERRORS, bulk_draft_create, bulk_preview
from ..delivery.templating import (
    sms_stats,
    template_create,
    template_delete,
    template_list,
    template_parse,
    template_stored_get,
    template_update,
)
from ..delivery.templating import template_sample_values as sample_values
from ..forms.bulk import BulkUploadForm, MessageTemplateForm
from ..log import bulk_recipient_list
from ..models import BulkSend, MessageTemplate


def _require_admin(request) -> None:
    if not request.tenant_access.can_write:
        raise PermissionDenied("Only this tenant's admins can do this.")


def _body_preview(body: str) -> dict | None:
    """Encoding and segments of a template body as typed and rendered with stand-in values."""
    if not body:
        return None
    parsed = template_parse(body)
    if parsed.errors:
        return {"errors": parsed.errors, "raw": sms_stats(body)}
    rendered = parsed.render(sample_values(parsed.variables))
    return {"variables": parsed.variables, "raw": sms_stats(body), "rendered": rendered, "stats": sms_stats(rendered)}


# --- Templates ----------------------------------------------------------------------------------


@require_GET
def template_list_view(request):
    rows = [(t, sms_stats(t.body), template_parse(t.body).variables) for t in template_list(tenant=request.tenant)]
    return render(request, "messaging/template_list.html", {"tenant": request.tenant, "rows": rows})


def template_create_view(request):
    _require_admin(request)
    form = MessageTemplateForm(request.POST or None, tenant=request.tenant)
    preview = None
    if request.method == "POST":
        if "preview" in request.POST:
            preview = _body_preview(request.POST.get("body", ""))
        elif form.is_valid():
            try:
                template = template_create(tenant=request.tenant, **form.cleaned_data, audit=audit_context(request))
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Template “{template.name}” created.")
                return redirect("template_list", tenant_slug=request.tenant.slug)
    return render(
        request,
        "messaging/template_form.html",
        {"tenant": request.tenant, "form": form, "preview": preview, "template": None},
    )


def template_edit_view(request, template_id: int):
    tenant = request.tenant
    template = get_scoped_or_404(MessageTemplate, tenant=tenant, pk=template_id)
    form = MessageTemplateForm(request.POST or None, instance=template, tenant=tenant)
    preview = _body_preview(template.body)
    if request.method == "POST":
        if "preview" in request.POST:
            preview = _body_preview(request.POST.get("body", ""))
        elif form.is_valid():
            # The form has already copied the new values onto `template`: compare with the stored row.
            stored = template_stored_get(tenant=tenant, template_id=template.pk)
            try:
                changed = template_update(
                    template=stored,
                    changes={k: form.cleaned_data[k] for k in form.fields},
                    audit=audit_context(request),
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Saved: {', '.join(changed)}." if changed else "Nothing changed.")
                return redirect("template_list", tenant_slug=tenant.slug)
    return render(
        request,
        "messaging/template_form.html",
        {"tenant": tenant, "form": form, "preview": preview, "template": template},
    )


@require_POST
def template_delete_view(request, template_id: int):
    template = get_scoped_or_404(MessageTemplate, tenant=request.tenant, pk=template_id)
    try:
        template_delete(template=template, audit=audit_context(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Template “{template.name}” deleted.")
    return redirect("template_list", tenant_slug=request.tenant.slug)


# --- Bulk sends ---------------------------------------------------------------------------------


@require_GET
def bulk_list_view(request):
    tenant = request.tenant
    bulks = list(bulk_list(tenant=tenant)[:100])
    progress = bulk_progress_many(tenant=tenant, bulk_ids=[b.pk for b in bulks])
    rows = [(b, progress[b.pk]) for b in bulks]
    return render(request, "messaging/bulk_list.html", {"tenant": tenant, "rows": rows})


def bulk_create_view(request):
    _require_admin(request)
    tenant = request.tenant
    form = BulkUploadForm(request.POST or None, request.FILES or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        bulk = bulk_draft_create(
            tenant=tenant,
            name=data["name"],
            template=data["template"],
            purpose=data["purpose"],
            sender=data["sender"],
            upload=form.upload,
            audit=audit_context(request),
        )
        return redirect("bulk_preview", tenant_slug=tenant.slug, bulk_id=bulk.pk)
    if request.method == "GET":
        form.initial.setdefault("name", f"Bulk send {timezone.localdate():%Y-%m-%d}")
    return render(
        request,
        "messaging/bulk_form.html",
        {
            "tenant": tenant,
            "form": form,
            "upload": form.upload if request.method == "POST" else None,
            "has_templates": form.fields["template"].queryset.exists(),
        },
    )


@require_GET
def bulk_preview_view(request, bulk_id: int):
    _require_admin(request)
    tenant = request.tenant
    bulk = get_scoped_or_404(BulkSend.objects.select_related("template"), tenant=tenant, pk=bulk_id)
    if bulk.status != BulkSend.Status.DRAFT:
        return redirect("bulk_detail", tenant_slug=tenant.slug, bulk_id=bulk.pk)
    return render(
        request,
        "messaging/bulk_preview.html",
        {
            "tenant": tenant,
            "bulk": bulk,
            "upload": bulk.upload,
            "preview": bulk_preview(bulk=bulk),
            "listed_errors": LISTED_ERRORS,
        },
    )


@require_POST
def bulk_launch_view(request, bulk_id: int):
    bulk = get_scoped_or_404(BulkSend, tenant=request.tenant, pk=bulk_id)
    try:
        bulk = bulk_launch(bulk=bulk, audit=audit_context(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("bulk_preview", tenant_slug=request.tenant.slug, bulk_id=bulk.pk)
    messages.success(request, f"“{bulk.name}” launched: {bulk.total_recipients:,} recipients.")
    return redirect("bulk_detail", tenant_slug=request.tenant.slug, bulk_id=bulk.pk)


@require_GET
def bulk_detail_view(request, bulk_id: int):
    tenant = request.tenant
    bulk = get_scoped_or_404(BulkSend.objects.select_related("template", "created_by"), tenant=tenant, pk=bulk_id)
    return render(
        request,
        "messaging/bulk_detail.html",
        {
            "tenant": tenant,
            "bulk": bulk,
            "progress": bulk_progress(tenant=tenant, bulk=bulk),
            "upload": bulk.upload or {},
            "recipients": keyset_page(bulk_recipient_list(tenant=tenant, bulk=bulk), cursor=request.GET.get("cursor")),
        },
    )


@never_cache
@require_GET
def bulk_progress_view(request, bulk_id: int):
    bulk = get_scoped_or_404(BulkSend.objects.defer("upload"), tenant=request.tenant, pk=bulk_id)
    return JsonResponse(bulk_progress(tenant=request.tenant, bulk=bulk))


def _bulk_action(request, bulk_id: int, action, done: str):
    bulk = get_scoped_or_404(BulkSend, tenant=request.tenant, pk=bulk_id)
    try:
        outcome = action(bulk=bulk, audit=audit_context(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done.format(name=bulk.name, n=outcome if isinstance(outcome, int) else 0))
    return redirect("bulk_detail", tenant_slug=request.tenant.slug, bulk_id=bulk.pk)


@require_POST
def bulk_pause_view(request, bulk_id: int):
    return _bulk_action(request, bulk_id, bulk_pause, "“{name}” paused: no further message will be picked.")


@require_POST
def bulk_resume_view(request, bulk_id: int):
    return _bulk_action(request, bulk_id, bulk_resume, "“{name}” resumed.")


@require_POST
def bulk_cancel_view(request, bulk_id: int):
    return _bulk_action(request, bulk_id, bulk_cancel, "“{name}” cancelled: {n:,} pending messages will not be sent.")
