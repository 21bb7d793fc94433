"""Twilio voice webhooks, verified by the gateway. No call flow is configured: an inbound call
hears a short message and is hung up; status and recording callbacks are acknowledged."""

from django.http import HttpResponse

from tenants.webhooks import require_fields, twilio_webhook, twiml


@twilio_webhook
def inbound(request, hook):
    if bad := require_fields(hook, "CallSid", "From", "To"):
        return bad
    # No call flow is configured yet: answer with a clear message rather than silence.
    return twiml("<Say>This number does not take calls yet. Goodbye.</Say><Hangup/>")


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
