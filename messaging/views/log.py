"""The message log pages: the list with its filters, and one message with its events."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_GET

from tenants.pagination import keyset_page
from tenants.twilio_errors import explain

from .. import log, statuses
from ..filters import message_filtered

# --- Message log -------------------------------------------------------------------------------


@require_GET
def message_list(request):
    tenant = request.tenant
    filters, qs = message_filtered(tenant=tenant, params=request.GET)
    page = keyset_page(log.message_log_rows(qs), cursor=request.GET.get("cursor"))
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
    message, events = log.message_detail(tenant=tenant, message_id=message_id)
    review = log.message_review_get(tenant=tenant, message=message)
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
