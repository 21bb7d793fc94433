"""SendGrid's signed Event Webhook (ECDSA P-256 over timestamp + raw body)."""

import json
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt
from sendgrid.helpers.eventwebhook import EventWebhook

from tenants.http import client_ip

logger = logging.getLogger("commsportal.webhooks")


@csrf_exempt
@login_not_required
def sendgrid_events(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if len(request.body) > settings.WEBHOOK_MAX_BODY_BYTES * 16:
        return HttpResponseBadRequest("Bad request: body too large.\n")
    signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
    timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    public_key = settings.SENDGRID_WEBHOOK_PUBLIC_KEY
    try:
        payload = request.body.decode("utf-8")
        valid = bool(public_key and signature and timestamp) and EventWebhook(public_key).verify_signature(
            payload, signature, timestamp
        )
    except Exception:  # noqa: BLE001 - a malformed key/signature is an invalid signature
        valid = False
    if not valid:
        logger.warning("sendgrid.webhook.invalid_signature", extra={"remote_addr": client_ip(request)})
        return HttpResponseForbidden("Forbidden: event webhook signature could not be verified.\n")
    try:
        events = json.loads(payload)
    except json.JSONDecodeError:
        return HttpResponseBadRequest("Bad request: body is not JSON.\n")
    if not isinstance(events, list):
        return HttpResponseBadRequest("Bad request: expected a JSON array of events.\n")
    return HttpResponse(status=204)
