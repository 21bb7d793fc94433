"""A tenant's audit log page, filtered by actor, action and date range, and its CSV export.

Only the tenant's admins (and superusers) read it, as before. The export takes the page's query
string, streams every matching row and is itself audited (`export.audit`). Targets are already
masked when written (tenants.services.audit_record's callers), so nothing is masked here.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from .exports import IsoUtc, csv_streaming_response
from .filters import CreatedRangeFilterSet, DateRangeForm
from .http import audit_context
from .models import AuditEvent
from .pagination import keyset_page
from .selectors import audit_events
from .services import audit_record
from .views import require_admin

AUDIT_COLUMNS = ("at", "actor", "action", "target", "reason", "ip")
#: Rows fetched per round trip while streaming the export.
CHUNK_SIZE = 2000


class AuditFilter(CreatedRangeFilterSet):
    """Narrows on the (tenant, -created_at) index's range plus exact or prefix matches."""

    actor = django_filters.CharFilter(
        label="Who",
        field_name="actor_label",
        lookup_expr="iexact",
        widget=forms.TextInput(attrs={"placeholder": "username"}),
    )
    # A prefix, so `export.` finds every export and `opt_out` both opt-out actions.
    action = django_filters.CharFilter(
        label="Action",
        lookup_expr="startswith",
        widget=forms.TextInput(attrs={"placeholder": "export. or opt_out.add"}),
    )

    class Meta:
        model = AuditEvent
        fields: list[str] = []
        form = DateRangeForm


def audit_filtered(*, tenant, params) -> tuple[AuditFilter, QuerySet[AuditEvent]]:
    """The filter form bound to `params` and the tenant's audit events it selects, newest first
    (none while the filters are invalid): the page and its export alike."""
    base = audit_events(tenant=tenant)
    filters = AuditFilter(params or None, queryset=base)
    if filters.is_bound and not filters.is_valid():
        return filters, base.none()
    return filters, filters.qs


@require_GET
def tenant_audit_log(request):
    require_admin(request)
    filters, qs = audit_filtered(tenant=request.tenant, params=request.GET)
    page = keyset_page(qs, cursor=request.GET.get("cursor"))
    return render(
        request,
        "tenants/audit_log.html",
        {
            "tenant": request.tenant,
            "filter_form": filters.form,
            "page": page,
            "events": page.rows,
            "filtered": any(v for k, v in request.GET.items() if k != "cursor"),
        },
    )


def _audit_rows(qs: QuerySet[AuditEvent]):
    values = qs.values_list(IsoUtc("created_at"), "actor_label", "action", "target", "reason", "ip_address")
    for at, actor, action, target, reason, ip in values.iterator(CHUNK_SIZE):
        yield at, actor, action, target, reason, ip or ""


@require_GET
def tenant_audit_export(request):
    """The audit log as CSV with the page's filters. Exporting it is audited too."""
    require_admin(request)
    tenant = request.tenant
    _, qs = audit_filtered(tenant=tenant, params=request.GET)
    audit_record(
        action="export.audit",
        tenant=tenant,
        target="audit log",
        details={"format": "csv", "filters": {k: v for k, v in request.GET.items() if k != "cursor" and v}},
        audit=audit_context(request),
    )
    filename = f"audit-{tenant.slug}-{timezone.now():%Y%m%d-%H%M}.csv"
    return csv_streaming_response(filename=filename, header=AUDIT_COLUMNS, rows=_audit_rows(qs))
