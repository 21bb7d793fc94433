"""The call log: the list with its filters, one call with its timeline, menu path and
recordings, and the CSV export (audited, masked for support staff)."""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from messaging.views.exports import csv_export_audited, export_show
from tenants.pagination import keyset_page

from ..calls import log
from ..calls.exports import CALL_COLUMNS, call_rows
from ..calls.statuses import call_status_is_final
from .recordings import recordings_unmasked


@require_GET
def call_list(request):
    tenant = request.tenant
    filters, qs = log.call_filtered(tenant=tenant, params=request.GET)
    page = keyset_page(qs, cursor=request.GET.get("cursor"))
    return render(
        request,
        "voice/call_list.html",
        {
            "tenant": tenant,
            "filter_form": filters.form,
            "page": page,
            "filtered": any(v for k, v in request.GET.items() if k != "cursor"),
        },
    )


@require_GET
def call_detail(request, call_id: int):
    tenant = request.tenant
    call, events, recordings = log.call_detail(tenant=tenant, call_id=call_id)
    masked = request.tenant_access.masks_numbers
    unmasked = recordings_unmasked(request)
    return render(
        request,
        "voice/call_detail.html",
        {
            "tenant": tenant,
            "call": call,
            "events": events,
            "recordings": [(r, not masked or r.pk in unmasked) for r in recordings],
            "call_final": call_status_is_final(call.status),
        },
    )


@require_GET
def call_export(request):
    """The call log as CSV, with the list page's filters; audited before the first byte."""
    _, qs = log.call_filtered(tenant=request.tenant, params=request.GET)
    return csv_export_audited(
        request,
        action="export.calls",
        target="calls",
        name="calls",
        columns=CALL_COLUMNS,
        rows=call_rows(qs, show=export_show(request)),
    )


@require_GET
def call_status(request, call_id: int):
    """The call's current status, for the detail page's live refresh."""
    call, _, _ = log.call_detail(tenant=request.tenant, call_id=call_id)
    return JsonResponse(
        {
            "id": call.pk,
            "status": call.status,
            "status_label": call.get_status_display(),
            "final": call_status_is_final(call.status),
        }
    )
