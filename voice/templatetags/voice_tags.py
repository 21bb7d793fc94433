"""Template helpers of the voice pages: status colours, durations, gate reasons, menu steps."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from messaging.models import GateReason

register = template.Library()

_STATUS_BADGES = {
    "completed": "success",
    "in-progress": "primary",
    "busy": "warning",
    "no-answer": "warning",
    "failed": "danger",
    "canceled": "secondary",
    "blocked": "danger",
    "pending": "light",
}


@register.filter
def call_status_badge(status: str) -> str:
    """Bootstrap colour of a call status badge."""
    return _STATUS_BADGES.get(status, "info")


@register.filter
def call_duration(seconds) -> str:
    """`1:05` for 65 seconds; `—` when unknown."""
    if seconds is None or seconds == "":
        return "—"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


@register.filter
def call_gate_reason(reason: str) -> str:
    return dict(GateReason.choices).get(reason, reason or "—")


@register.simple_tag
def call_step(step) -> str:
    """One entry of a call's menu path: a step (and the digits pressed there), as the flow engine
    stores it (`{"step": …, "digits": …}`), or plain text."""
    if isinstance(step, dict):
        name = step.get("step") or step.get("node") or step.get("action") or "step"
        digits = step.get("digits")
        if digits:
            return format_html('{} <span class="text-muted">(pressed {})</span>', name, digits)
        return format_html("{}", name)
    return format_html("{}", step)
