"""One-off sends from the portal: a form with live E.164 validation and a gate preview, and a
status endpoint the message page polls so an admin watches callbacks arrive."""

from __future__ import annotations

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from tenants.http import audit_context
from tenants.phones import phone_mask, phone_parse, tenant_phone_region
from tenants.scoping import get_scoped_or_404
from tenants.services import audit_record
from tenants.views import require_admin

from ..compliance.gate import gate_check
from ..delivery.enqueue import message_unqueued
from ..delivery.queueing import message_send
from ..delivery.segments import sms_encoding, sms_segments
from ..forms.send import MessageSendForm
from ..models import GateReason, Message, Purpose
from ..statuses import FINAL_STATUSES

GATE_EXPLANATIONS = {
    "": "Passes the compliance gate: it will be sent now.",
    GateReason.OPTED_OUT: "Blocked: this number opted out (or was erased). Nothing is sent, for any purpose.",
    GateReason.NO_CONSENT: "Blocked: marketing needs an active marketing consent for this number.",
    GateReason.QUIET_HOURS: "Deferred: it is outside the recipient's allowed local hours.",
    GateReason.FREQUENCY_CAP: "Deferred: this number reached the marketing frequency cap for 24 hours.",
    GateReason.INVALID_NUMBER: "Blocked: not a valid phone number.",
    GateReason.TENANT_SUSPENDED: "Blocked: this tenant is not active, so nothing is sent.",
    GateReason.REVOCATION_PENDING: "Deferred: a possible revocation from this number awaits review.",
}


def message_send_view(request):
    require_admin(request)
    tenant = request.tenant
    form = MessageSendForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            message = message_send(
                tenant=tenant,
                to=data["to"],
                body=data["body"],
                purpose=data["purpose"],
                sender=data["sender"],
                created_by=request.user,
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            audit_record(
                action="message.send",
                tenant=tenant,
                audit=audit_context(request),
                target=phone_mask(message.to_number),
                details={"message_id": message.pk, "purpose": message.purpose, "decision": message.gate_decision},
            )
            if message.status == "blocked":
                flash.error(request, GATE_EXPLANATIONS.get(message.gate_reason, "Blocked by the compliance gate."))
            elif message.gate_decision == "defer":
                flash.warning(
                    request,
                    f"Deferred until {message.send_after:%Y-%m-%d %H:%M} UTC ({message.get_gate_reason_display()}).",
                )
            elif message_unqueued(message):
                flash.warning(request, "Queued: it will be sent when the worker is reachable.")
            else:
                flash.success(request, "Queued: watch its status change below as Twilio's callbacks arrive.")
            return redirect("message_detail", tenant_slug=tenant.slug, message_id=message.pk)
    return render(
        request,
        "messaging/message_send.html",
        {"tenant": tenant, "form": form},
    )


@never_cache
@require_GET
def message_send_preview(request):
    """What the gate would decide for this number and purpose right now (no write), and whether
    the chosen sender would be accepted: the send form's own validation, so they never disagree."""
    require_admin(request)
    tenant = request.tenant
    raw, purpose, body = request.GET.get("to", ""), request.GET.get("purpose", ""), request.GET.get("body", "")
    result = {
        "valid": False,
        "e164": "",
        "error": "",
        "decision": "",
        "reason": "",
        "explanation": "",
        "send_after": None,
        "sender_error": "",
    }
    if body:
        result.update(encoding=sms_encoding(body), segments=sms_segments(body))
    try:
        result["e164"] = phone_parse(raw, region=tenant_phone_region(tenant))
        result["valid"] = True
    except ValidationError as exc:
        result["error"] = " ".join(exc.messages)
        return JsonResponse(result)
    if purpose not in Purpose.values:
        result["error"] = "Choose a purpose."
        return JsonResponse(result)
    form = MessageSendForm({"sender": request.GET.get("sender", "")}, tenant=tenant)
    if not form.is_valid() and "sender" in form.errors:
        result["sender_error"] = " ".join(form.errors["sender"])
        return JsonResponse(result)
    verdict = gate_check(tenant=tenant, to=result["e164"], purpose=purpose)
    result.update(
        decision=verdict.decision,
        reason=verdict.reason,
        explanation=GATE_EXPLANATIONS.get(verdict.reason, verdict.reason),
        send_after=verdict.send_after.isoformat() if verdict.send_after else None,
    )
    return JsonResponse(result)


@never_cache
@require_GET
def message_status(request, message_id: int):
    """The message's current status, for the detail page's live refresh."""
    message = get_scoped_or_404(Message, tenant=request.tenant, pk=message_id)
    return JsonResponse(
        {
            "id": message.pk,
            "status": message.status,
            "status_label": message.get_status_display(),
            "final": message.status in FINAL_STATUSES,
            "error_code": message.error_code,
            "updated": message.status_updated_at.isoformat() if message.status_updated_at else None,
        }
    )
