"""Template helpers of the messaging pages: links to a number's history, status badges."""

import unicodedata

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from messaging.number_refs import number_ref
from messaging.statuses import STATUS_LABELS
from messaging.statuses import status_label as _status_label
from tenants.phones import DEFAULT_REGION, phone_for_viewer, phone_text_for_viewer, tenant_phone_region
from tenants.twilio_errors import explain

register = template.Library()

#: The log's body column: longer bodies are cut there with an ellipsis (`truncatechars`).
BODY_CHARS = 80

_STATUS_BADGES = {
    "delivered": "success",
    "read": "success",
    "received": "success",
    "sent": "primary",
    "partially_delivered": "warning",
    "undelivered": "danger",
    "failed": "danger",
    "blocked": "dark",
    "canceled": "secondary",
    "pending": "light",
}


@register.simple_tag(takes_context=True)
def number_url(context, phone, name="number_history"):
    """URL of a number page (history, unmask): an opaque reference, never the number itself."""
    tenant = context.get("current_tenant") or context.get("tenant")
    ref = number_ref(phone, tenant=tenant)
    return reverse(name, kwargs={"tenant_slug": tenant.slug, "number": ref})


@register.filter
def status_badge(status: str) -> str:
    """Bootstrap colour of a message status badge."""
    return _STATUS_BADGES.get(status, "info")


@register.filter
def status_label(status: str) -> str:
    """The label of a status or counting group, from `messaging.statuses` (one vocabulary)."""
    return _status_label(status)


@register.filter
def twilio_error(code) -> str:
    return explain(code)


def _local_stamp(moment) -> str:
    """`moment` as the `date:"Y-m-d H:i:s T"` filter shows it, in the active (tenant's) zone."""
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip()


@register.simple_tag(takes_context=True)
def message_rows(context, messages) -> list[dict]:
    """The message log's rows, each cell's text worked out once here instead of by a dozen
    template filters per row (the log page's rows were a third of its time). The rules are
    the ones the tags use: `phone_for_viewer` and `phone_text_for_viewer` for what this viewer
    may see, `explain` for error codes, masking before the body is cut."""
    tenant = context.get("current_tenant") or context.get("tenant")
    access = context.get("tenant_access")
    own_numbers = context.get("tenant_own_numbers", ())
    region = tenant_phone_region(tenant) if tenant is not None else DEFAULT_REGION
    detail = reverse("message_detail", kwargs={"tenant_slug": tenant.slug, "message_id": 0})[: -len("0/")]
    rows = []
    for m in messages:
        sent_at = m.sent_at
        body = ""
        if not m.body_purged_at:
            shown = phone_text_for_viewer(m.body, access=access, own_numbers=own_numbers, region=region)
            shown = unicodedata.normalize("NFC", shown)  # as Truncator does first
            body = shown if len(shown) <= BODY_CHARS else Truncator(shown).chars(BODY_CHARS)
        rows.append(
            {
                "url": f"{detail}{m.id}/",
                "when": _local_stamp(sent_at or m.created_at),
                "sent": sent_at is not None,
                "inbound": m.direction == "inbound",
                "keyword": m.keyword.upper(),
                "from": phone_for_viewer(m.from_number, access=access, own_numbers=own_numbers),
                "to": phone_for_viewer(m.to_number, access=access, own_numbers=own_numbers),
                "purged": bool(m.body_purged_at),
                "body": body,
                "num_media": m.num_media,
                "status": STATUS_LABELS.get(m.status, m.status),  # get_status_display, without its per-call dict
                "badge": _STATUS_BADGES.get(m.status, "info"),
                "error_code": m.error_code,
                "error": explain(m.error_code) if m.error_code else "",
            }
        )
    return rows
