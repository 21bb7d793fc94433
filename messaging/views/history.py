"""One number's history page, its exports, and unmasking a number for support staff (audited)."""

from __future__ import annotations

import csv

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from tenants.exports import spreadsheet_safe
from tenants.http import audit_context
from tenants.middleware import support_action
from tenants.numbers import tenant_own_numbers
from tenants.phones import phone_for_viewer, phone_mask, phone_text_for_viewer, tenant_phone_region
from tenants.registry import number_history_sections
from tenants.services import audit_record

from ..forms.ledgers import UnmaskForm
from ..ledgers.history import HISTORY_COLUMNS, NumberHistory, number_history_export
from ..ledgers.history import number_history as number_history_build
from ..number_refs import number_from_ref

# --- Numbers -----------------------------------------------------------------------------------


@require_GET
def number_history(request, number: str):
    """Everything the portal knows about one number: a printable, exportable consent proof."""
    tenant = request.tenant
    phone = number_from_ref(number, tenant=tenant)
    history = number_history_build(tenant=tenant, phone=phone)
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
            # Other apps' parts of the number's history (voice: its calls), `tenants.registry`.
            "history_sections": [
                (section.template_name, section.context(tenant=tenant, phone=phone))
                for section in number_history_sections
            ],
        },
    )


#: Export columns people or Twilio write freely, where a number may hide.
_FREE_TEXT_COLUMNS = ("source", "text", "actor")


def _history_export(request, history: NumberHistory, export: str):
    tenant = request.tenant
    masked = request.tenant_access.masks_numbers
    own = tenant_own_numbers(tenant=tenant)

    def show(value: str) -> str:
        return phone_for_viewer(value, access=request.tenant_access, own_numbers=own)

    rows = number_history_export(
        tenant=tenant, history=history, export=export, show=show, masked=masked, audit=audit_context(request)
    )
    region = tenant_phone_region(tenant)
    for row in rows:  # free text (bodies, sources, notes) may quote a customer's number
        for column in _FREE_TEXT_COLUMNS:
            row[column] = phone_text_for_viewer(
                row[column], access=request.tenant_access, own_numbers=own, region=region
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
            audit=audit_context(request),
            target=phone_mask(phone),
            reason=form.cleaned_data["reason"],
        )
        revealed = phone
    return render(
        request,
        "messaging/number_unmask.html",
        {"tenant": tenant, "phone": phone, "revealed": revealed, "form": form, "number": number},
    )
