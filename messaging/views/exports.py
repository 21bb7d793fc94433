"""CSV exports of the messaging lists: messages, opt-outs, consent and a bulk send's recipients.

Each export takes the query string of its list page (same parameter names, same filters) and
streams every matching row, not just one page. Every export is audited before the first byte
leaves — personal data leaving the portal, whoever takes it — with the filters used (numbers in
them masked, like every audit target). Support staff get masked numbers, as on the pages.
"""

from __future__ import annotations

from django.utils import timezone
from django.views.decorators.http import require_GET

from tenants.exports import csv_streaming_response
from tenants.http import audit_context
from tenants.phones import phone_mask, phone_text_mask
from tenants.scoping import get_scoped_or_404
from tenants.services import audit_record

from .. import exports, log
from ..filters import message_filtered
from ..ledgers.selectors import consent_current_list
from ..models import BulkSend
from .ledgers import consent_search, opt_out_filtered

#: Query parameters that may hold a phone number (or its last digits): masked in the audit row.
_NUMBER_PARAMS = ("phone", "q")


def export_show(request):
    """How an export shows a number to this viewer: masked for support staff."""
    return phone_mask if request.tenant_access.masks_numbers else str


def _show_text(request):
    """Free text in an export, as `export_show` shows numbers: support staff get the numbers in it masked."""
    return phone_text_mask if request.tenant_access.masks_numbers else str


def _filters_for_audit(params) -> dict:
    return {
        key: phone_mask(value) if key in _NUMBER_PARAMS else value
        for key, value in params.items()
        if key != "cursor" and value
    }


def csv_export_audited(request, *, action: str, target: str, name: str, columns, rows):
    """Audit an export (`action`, with the filters used) and stream its rows as CSV: the one
    way every list's export leaves the portal (voice's call log uses it too)."""
    tenant = request.tenant
    audit_record(
        action=action,
        tenant=tenant,
        target=target,
        details={
            "format": "csv",
            "masked": request.tenant_access.masks_numbers,
            "filters": _filters_for_audit(request.GET),
        },
        audit=audit_context(request),
    )
    filename = f"{name}-{tenant.slug}-{timezone.now():%Y%m%d-%H%M}.csv"
    return csv_streaming_response(filename=filename, header=columns, rows=rows)


@require_GET
def message_export(request):
    """The message log as CSV, with the list page's filters (bulk send included)."""
    _, qs = message_filtered(tenant=request.tenant, params=request.GET)
    return csv_export_audited(
        request,
        action="export.messages",
        target="messages",
        name="messages",
        columns=exports.MESSAGE_COLUMNS,
        rows=exports.message_rows(qs, show=export_show(request)),
    )


@require_GET
def opt_out_export(request):
    """Each number's current opt-out state, with the list page's filters."""
    _, qs = opt_out_filtered(tenant=request.tenant, params=request.GET)
    return csv_export_audited(
        request,
        action="export.opt_outs",
        target="opt-outs",
        name="opt-outs",
        columns=exports.OPT_OUT_COLUMNS,
        rows=exports.opt_out_rows(qs, show=export_show(request)),
    )


@require_GET
def consent_export(request):
    """Each number's current consent per purpose, with the list page's filters applied to it."""
    form, filters = consent_search(tenant=request.tenant, params=request.GET)
    qs = consent_current_list(tenant=request.tenant, **filters)
    if form.is_bound and not form.is_valid():
        qs = qs.none()
    return csv_export_audited(
        request,
        action="export.consent",
        target="consent",
        name="consent",
        columns=exports.CONSENT_COLUMNS,
        rows=exports.consent_rows(qs, show=export_show(request), show_text=_show_text(request)),
    )


@require_GET
def bulk_recipients_export(request, bulk_id: int):
    """A bulk send's recipients with their outcome so far."""
    bulk = get_scoped_or_404(BulkSend.objects.defer("upload"), tenant=request.tenant, pk=bulk_id)
    qs = log.bulk_recipient_list(tenant=request.tenant, bulk=bulk)
    return csv_export_audited(
        request,
        action="export.bulk_recipients",
        target=f"bulk send #{bulk.pk} ({bulk.name})",
        name=f"bulk-{bulk.pk}-recipients",
        columns=exports.BULK_RECIPIENT_COLUMNS,
        rows=exports.bulk_recipient_rows(qs, show=export_show(request)),
    )
