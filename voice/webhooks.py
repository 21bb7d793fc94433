"""Twilio voice webhooks, verified by the gateway: thin views. Inbound calls and menu key
presses are answered with the called number's call flow (voice/flows/answer.py); status and
recording callbacks go to `voice.calls` (status.py, recordings.py)."""

import logging

from django.http import HttpResponse, HttpResponseBadRequest

from messaging.intake.params import params_storable
from tenants.webhooks import require_fields, twilio_webhook

from .calls.params import CALL_SID_SHAPE, RECORDING_SID_SHAPE
from .calls.recordings import recording_callback_apply
from .calls.status import call_status_apply
from .calls.statuses import CALLBACK_STATUSES
from .flows.answer import gather_answer, inbound_answer

logger = logging.getLogger("commsportal.webhooks")


def _twiml(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/xml")


def _bad(hook, why: str) -> HttpResponse:
    logger.warning(
        "twilio.webhook.bad_field", extra={"event": "twilio.webhook.bad_field", "tenant": hook.tenant.slug, "why": why}
    )
    return HttpResponseBadRequest(f"Bad request: {why}.\n", content_type="text/plain")


@twilio_webhook
def inbound(request, hook):
    if bad := require_fields(hook, "CallSid", "From", "To"):
        return bad
    # NULs replaced and fields cut to their columns: a JSON body may carry any value.
    params, _ = params_storable(hook.params)
    # `?call=<pk>`: an outbound call the portal placed (the query is covered by the signature).
    return _twiml(inbound_answer(tenant=hook.tenant, params=params, call_ref=request.GET.get("call")))


@twilio_webhook
def gather(request, hook):
    """The flow's <Gather>/<Redirect>/<Record>/<Dial> come back here with the step in the query string."""
    if bad := require_fields(hook, "CallSid"):
        return bad
    params, _ = params_storable(hook.params)
    return _twiml(
        gather_answer(
            tenant=hook.tenant,
            call_sid=params["CallSid"].strip(),
            step=request.GET.get("step", ""),
            digits=params.get("Digits", ""),
            dial_status=params.get("DialCallStatus", ""),
            attempt=request.GET.get("attempt", "1"),
            request_token=request.headers.get("I-Twilio-Idempotency-Token", ""),
        )
    )


@twilio_webhook
def status(request, hook):
    """Apply a call status callback; `?call=` is the portal's own call id, when it placed it."""
    if bad := require_fields(hook, "CallSid", "CallStatus"):
        return bad
    if not CALL_SID_SHAPE.fullmatch(str(hook.params.get("CallSid")).strip()):
        return _bad(hook, "CallSid is not a Twilio call SID")
    if str(hook.params.get("CallStatus")).strip().lower() not in CALLBACK_STATUSES:
        return _bad(hook, "unknown CallStatus")
    call_status_apply(tenant=hook.tenant, params=hook.params, call_id=request.GET.get("call"))
    return HttpResponse(status=204)


@twilio_webhook
def recording(request, hook):
    """Store a recording's metadata, once per RecordingSid (the audio stays at Twilio)."""
    if bad := require_fields(hook, "RecordingSid", "CallSid"):
        return bad
    if not RECORDING_SID_SHAPE.fullmatch(str(hook.params.get("RecordingSid")).strip()):
        return _bad(hook, "RecordingSid is not a Twilio recording SID")
    if not CALL_SID_SHAPE.fullmatch(str(hook.params.get("CallSid")).strip()):
        return _bad(hook, "CallSid is not a Twilio call SID")
    recording_callback_apply(tenant=hook.tenant, params=hook.params)
    return HttpResponse(status=204)
