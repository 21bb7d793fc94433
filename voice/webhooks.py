"""Twilio voice webhooks, verified by the gateway. Inbound calls and menu key presses are
answered with the called number's call flow (voice/flows/answer.py); status and recording
callbacks are acknowledged."""

from django.http import HttpResponse

from messaging.intake.params import params_storable
from tenants.webhooks import require_fields, twilio_webhook

from .flows.answer import gather_answer, inbound_answer


def _twiml(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/xml")


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
        )
    )


@twilio_webhook
def status(request, hook):
    if bad := require_fields(hook, "CallSid", "CallStatus"):
        return bad
    return HttpResponse(status=204)


@twilio_webhook
def recording(request, hook):
    if bad := require_fields(hook, "RecordingSid", "CallSid"):
        return bad
    return HttpResponse(status=204)
