"""Template helpers of the messaging pages: links to a number's history, status badges."""

from django import template
from django.urls import reverse

from messaging.number_refs import number_ref
from messaging.statuses import status_label as _status_label
from tenants.twilio_errors import explain

register = template.Library()

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
