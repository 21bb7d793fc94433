"""Twilio messaging webhooks (inbound SMS, delivery status)."""

from django.http import HttpResponse

from tenants.webhooks import require_fields, twilio_webhook, twiml


@twilio_webhook
def inbound(request, hook):
    if bad := require_fields(hook, "MessageSid", "From", "To"):
        return bad
    return twiml()


@twilio_webhook
def status(request, hook):
    if bad := require_fields(hook, "MessageSid", "MessageStatus"):
        return bad
    return HttpResponse(status=204)
