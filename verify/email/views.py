"""The email pages of a tenant: the email log (with one email's events), the suppression list
(admins add and lift entries, audited), and both as CSV exports. Support staff read them with
addresses masked."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tenants.emails import email_mask, email_text_mask
from tenants.exports import csv_streaming_response
from tenants.http import audit_context
from tenants.pagination import keyset_page
from tenants.scoping import get_scoped_or_404
from tenants.services import audit_record
from tenants.views import require_admin

from ..models import EmailMessage, EmailSuppression
from . import exports
from .forms import SuppressionAddForm, SuppressionRemoveForm
from .selectors import email_event_list, email_filtered, suppression_filtered
from .sending import provider_problem_current
from .suppressions import suppression_add, suppression_remove

#: Query parameters that may hold an address: masked in the export's audit row.
_ADDRESS_PARAMS = ("to", "email")


def _filtered_flag(request) -> bool:
    return any(v for k, v in request.GET.items() if k != "cursor")


@require_GET
def email_list(request):
    tenant = request.tenant
    filters, qs = email_filtered(tenant=tenant, params=request.GET)
    return render(
        request,
        "verify/email_list.html",
        {
            "tenant": tenant,
            "filter_form": filters.form,
            "page": keyset_page(qs, cursor=request.GET.get("cursor")),
            "filtered": _filtered_flag(request),
            "provider_problem": provider_problem_current(),
        },
    )


@require_GET
def email_detail(request, email_id: int):
    tenant = request.tenant
    email = get_scoped_or_404(EmailMessage, tenant=tenant, pk=email_id)
    events = email_event_list(tenant=tenant, email=email)
    return render(request, "verify/email_detail.html", {"tenant": tenant, "email": email, "events": events})


@require_http_methods(["GET", "POST"])
def email_suppression_list(request):
    """The list, and (POST, admins) an address added by hand."""
    tenant = request.tenant
    add_form = SuppressionAddForm(request.POST or None) if request.tenant_access.can_write else None
    if request.method == "POST":
        require_admin(request)
        if add_form.is_valid():
            data = add_form.cleaned_data
            _, created = suppression_add(
                tenant=tenant,
                email=data["email"],
                reason=EmailSuppression.Reason.MANUAL,
                asm_group_id=data["asm_group_id"],
                detail=data["detail"],
                audit=audit_context(request),
            )
            if created:
                messages.success(request, f"{data['email']} is suppressed: it will not be emailed.")
            else:
                messages.info(request, f"{data['email']} was already on the list.")
            return redirect("email_suppression_list", tenant_slug=tenant.slug)
    filters, qs = suppression_filtered(tenant=tenant, params=request.GET)
    return render(
        request,
        "verify/email_suppression_list.html",
        {
            "tenant": tenant,
            "filter_form": filters.form,
            "page": keyset_page(qs, cursor=request.GET.get("cursor")),
            "filtered": _filtered_flag(request),
            "add_form": add_form,
            "remove_form": SuppressionRemoveForm() if request.tenant_access.can_write else None,
        },
    )


@require_POST
def email_suppression_remove(request, entry_id: int):
    """An admin lifts one entry, with a reason (audited)."""
    require_admin(request)
    tenant = request.tenant
    entry = get_scoped_or_404(EmailSuppression, tenant=tenant, pk=entry_id)
    form = SuppressionRemoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason to lift a suppression.")
        return redirect("email_suppression_list", tenant_slug=tenant.slug)
    try:
        suppression_remove(
            tenant=tenant, entry_id=entry.pk, audit=audit_context(request), reason=form.cleaned_data["reason"]
        )
    except EmailSuppression.DoesNotExist as exc:  # lifted meanwhile
        raise Http404("No suppression here") from exc
    messages.success(request, f"{entry.email} may be emailed again.")
    return redirect("email_suppression_list", tenant_slug=tenant.slug)


# --------------------------------------------------------------------------- exports


def _export(request, *, action: str, name: str, columns, rows):
    """Audited before the first byte leaves, with the filters used (addresses masked)."""
    tenant = request.tenant
    filters = {k: email_mask(v) if k in _ADDRESS_PARAMS else v for k, v in request.GET.items() if k != "cursor" and v}
    audit_record(
        action=action,
        tenant=tenant,
        target=name,
        details={"format": "csv", "masked": request.tenant_access.masks_numbers, "filters": filters},
        audit=audit_context(request),
    )
    filename = f"{name}-{tenant.slug}-{timezone.now():%Y%m%d-%H%M}.csv"
    return csv_streaming_response(filename=filename, header=columns, rows=rows)


def _show(request):
    return email_mask if request.tenant_access.masks_numbers else str


@require_GET
def email_export(request):
    _, qs = email_filtered(tenant=request.tenant, params=request.GET)
    rows = exports.email_rows(qs, show=_show(request), show_text=_show_text(request))
    return _export(request, action="export.emails", name="emails", columns=exports.EMAIL_COLUMNS, rows=rows)


@require_GET
def email_suppression_export(request):
    _, qs = suppression_filtered(tenant=request.tenant, params=request.GET)
    rows = exports.suppression_rows(qs, show=_show(request), show_text=_show_text(request))
    return _export(
        request,
        action="export.email_suppressions",
        name="email-suppressions",
        columns=exports.SUPPRESSION_COLUMNS,
        rows=rows,
    )


def _show_text(request):
    return email_text_mask if request.tenant_access.masks_numbers else str
