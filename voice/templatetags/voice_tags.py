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
    """One entry of a call's menu path as the flow engine stores it (`{"step", "digits",
    "action"}`, `voice.flows.twiml`), or plain text."""
    if not isinstance(step, dict):
        return format_html("{}", step)
    name = step.get("step") or "step"
    action = step.get("action") or ""
    digits = step.get("digits") or ""
    return format_html(
        "{}{}{}",
        name,
        format_html(' <span class="text-muted">(pressed {})</span>', digits) if digits else "",
        format_html(" → {}", action.replace("_", " ")) if action else "",
    )
