"""Twilio voice webhooks, verified by the gateway: thin views over `voice.calls` (status
callbacks, recording callbacks). No call flow is configured here: an inbound call hears a
short message and is hung up."""

import logging

from django.http import HttpResponse, HttpResponseBadRequest

from tenants.webhooks import require_fields, twilio_webhook, twiml

from .calls.params import CALL_SID_SHAPE, RECORDING_SID_SHAPE
from .calls.recordings import recording_callback_apply
from .calls.status import call_status_apply
from .calls.statuses import CALLBACK_STATUSES

logger = logging.getLogger("commsportal.webhooks")


def _bad(hook, why: str) -> HttpResponse:
    logger.warning(
        "twilio.webhook.bad_field", extra={"event": "twilio.webhook.bad_field", "tenant": hook.tenant.slug, "why": why}
    )
    return HttpResponseBadRequest(f"Bad request: {why}.\n", content_type="text/plain")


@twilio_webhook
def inbound(request, hook):
    if bad := require_fields(hook, "CallSid", "From", "To"):
        return bad
    # No call flow is configured yet: answer with a clear message rather than silence.
    return twiml("<Say>This number does not take calls yet. Goodbye.</Say><Hangup/>")


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
