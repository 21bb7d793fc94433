"""SendGrid's signed Event Webhook (ECDSA P-256 over timestamp + raw body).

Checked in a fixed order, each rejection logged with a dotted event name and nothing written:
method (405) -> body size (400) -> signature with the platform's SENDGRID_WEBHOOK_PUBLIC_KEY
(403) -> timestamp within SENDGRID_WEBHOOK_MAX_SKEW_SECONDS of now (403: a replayed capture)
-> JSON array (400). Then `verify.email.events.events_record` stores the batch idempotently.
"""

import json
import logging
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponseBadRequest, HttpResponseForbidden, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from sendgrid.helpers.eventwebhook import EventWebhook

from tenants.http import client_ip

from .email.events import events_record

logger = logging.getLogger("commsportal.webhooks")
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def signature_valid(*, payload: bytes, signature: str, timestamp: str) -> bool:
    """Whether SendGrid signed `timestamp + payload` with the platform's webhook key."""
    public_key = settings.SENDGRID_WEBHOOK_PUBLIC_KEY
    if not (public_key and signature and timestamp):
        return False
    try:
        return bool(EventWebhook(public_key).verify_signature(payload.decode("utf-8"), signature, timestamp))
    except Exception:  # noqa: BLE001 - a malformed key, signature or body is an invalid signature
        return False


def timestamp_fresh(timestamp: str) -> bool:
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    return abs(time.time() - sent) <= settings.SENDGRID_WEBHOOK_MAX_SKEW_SECONDS


@csrf_exempt
@login_not_required
def sendgrid_events(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if len(request.body) > settings.WEBHOOK_MAX_BODY_BYTES * 16:
        return HttpResponseBadRequest("Bad request: body too large.\n")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    if not signature_valid(payload=request.body, signature=signature, timestamp=timestamp):
        logger.warning("sendgrid.webhook.invalid_signature", extra={"remote_addr": client_ip(request)})
        return HttpResponseForbidden("Forbidden: event webhook signature could not be verified.\n")
    if not timestamp_fresh(timestamp):
        logger.warning("sendgrid.webhook.stale_timestamp", extra={"remote_addr": client_ip(request)})
        return HttpResponseForbidden("Forbidden: event webhook timestamp is too old or in the future.\n")
    try:
        events = json.loads(request.body)
    except (ValueError, RecursionError):
        return HttpResponseBadRequest("Bad request: body is not JSON.\n")
    if not isinstance(events, list):
        return HttpResponseBadRequest("Bad request: expected a JSON array of events.\n")
    return JsonResponse(events_record(events=events))
