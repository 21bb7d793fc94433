"""Twilio messaging webhooks (inbound SMS, delivery status): thin views over
`messaging.intake.inbound` and `messaging.intake.status`.

The gateway (`tenants.webhooks.twilio_webhook`) has already checked method, body, tenant and
signature; each view checks its required fields, makes one service call and answers fast.
"""

import logging

from django.http import HttpResponse, HttpResponseBadRequest

from tenants.webhooks import require_fields, twilio_webhook

from .inbound import inbound_message_receive
from .status import CALLBACK_STATUSES, status_callback_apply

logger = logging.getLogger("commsportal.webhooks")


@twilio_webhook
def inbound(request, hook):
    """Store the message, act on keywords, answer TwiML (a reply only in `portal` mode)."""
    if bad := require_fields(hook, "MessageSid", "From", "To"):
        return bad
    result = inbound_message_receive(tenant=hook.tenant, params=hook.params, held=hook.held)
    return HttpResponse(result.twiml(), content_type="text/xml")


@twilio_webhook
def status(request, hook):
    """Apply a delivery status callback; `?m=` is the portal's own message id, when it sent it."""
    if bad := require_fields(hook, "MessageSid", "MessageStatus"):
        return bad
    value = str(hook.params.get("MessageStatus")).strip().lower()
    if value not in CALLBACK_STATUSES:
        logger.warning(
            "twilio.webhook.unknown_status",
            extra={"event": "twilio.webhook.unknown_status", "tenant": hook.tenant.slug, "status": value[:40]},
        )
        return HttpResponseBadRequest("Bad request: unknown MessageStatus.\n", content_type="text/plain")
    status_callback_apply(tenant=hook.tenant, params=hook.params, message_id=request.GET.get("m"))
    return HttpResponse(status=204)
