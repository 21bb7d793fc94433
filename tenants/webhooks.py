"""The signed-webhook gateway every Twilio-facing view goes through.

Checks run in a fixed order, like Sentry's webhook handlers: method (405), body size and
shape (400), tenant by `AccountSid` (403; its shape is checked before the lookup), signature
with THAT tenant's credentials (403).
Only then does the view run. A database that cannot be reached (down, restarting, a cut
connection) answers 503 with one log line, not a 500 with a traceback: nothing was committed,
and the resync recovers what Twilio will not resend. A rejection writes nothing of the payload: it logs one
structured line without secrets and bumps a per-tenant counter support staff can see
(`tenants.rejections`: counted in the cache, so a flood of forgeries is not a flood of writes).
"""

from __future__ import annotations

import json
import logging
import re
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed, QueryDict
from django.views.decorators.csrf import csrf_exempt
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator, get_signature_algorithm

from .http import client_ip
from .models import Tenant
from .phones import phone_mask
from .rejections import webhook_rejection_count

logger = logging.getLogger("commsportal.webhooks")

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
#: Twilio account SIDs: checked before the tenant lookup, so junk (a NUL, a megabyte) never
#: reaches a query that could fail on it.
ACCOUNT_SID_SHAPE = re.compile(r"AC[0-9a-f]{32}")


class WebhookRequest:
    """What a gateway-approved view receives: the tenant and the signed parameters."""

    __slots__ = ("tenant", "params", "raw_body")

    def __init__(self, tenant: Tenant, params: QueryDict | dict, raw_body: bytes) -> None:
        self.tenant = tenant
        self.params = params
        self.raw_body = raw_body


def public_url(request: HttpRequest) -> str:
    """The URL Twilio called: the configured public origin + path + query.

    Behind a TLS-terminating proxy Django sees http:// and an internal host; Twilio signed the
    public https:// URL, so the URL is rebuilt from PUBLIC_BASE_URL, never from the request.
    """
    return settings.PUBLIC_BASE_URL + request.get_full_path()


def _reject(request: HttpRequest, status: int, event: str, *, tenant: Tenant | None = None, **fields) -> HttpResponse:
    logger.warning(
        event,
        extra={
            "event": event,
            "path": request.path,
            "tenant": tenant.slug if tenant else None,
            "remote_addr": client_ip(request),
            **fields,
        },
    )
    if status == 403:
        webhook_rejection_count(tenant_id=tenant.id if tenant else None, reason=event.rsplit(".", 1)[-1])
        return HttpResponse(
            "Forbidden: webhook signature could not be verified.\n", status=403, content_type="text/plain"
        )
    return HttpResponseBadRequest(
        f"Bad request: {fields.get('why', 'malformed webhook body')}.\n", content_type="text/plain"
    )


def _parse_body(request: HttpRequest) -> tuple[QueryDict | dict, bytes]:
    """Return (params, raw body). Raises ValueError with a reason for a malformed body."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.WEBHOOK_MAX_BODY_BYTES:
        raise ValueError("body too large")
    raw = request.body
    if len(raw) > settings.WEBHOOK_MAX_BODY_BYTES:
        raise ValueError("body too large")
    content_type = request.content_type or ""
    if content_type == "application/json":
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError("body is not valid JSON") from exc
        if not isinstance(data, dict):
            raise ValueError("JSON body must be an object")
        if not request.GET.get("bodySHA256"):
            # Twilio signs a JSON body through this hash in the URL; without it nothing covers the body.
            raise ValueError("JSON body without bodySHA256 in the URL")
        return data, raw
    if content_type != FORM_CONTENT_TYPE:
        raise ValueError(f"unsupported content type {content_type or '(none)'}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("body is not UTF-8") from exc
    return request.POST, raw


def signature_is_valid(*, tenant: Tenant, request: HttpRequest, params, raw_body: bytes) -> bool:
    """Check X-Twilio-Signature with the tenant's auth token(s), or its signing key for HMAC-SHA256."""
    signature = request.headers.get("X-Twilio-Signature", "")
    url = public_url(request)
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings", ""))
    # JSON bodies are signed through bodySHA256 in the URL: validate against the raw body.
    payload = params if isinstance(params, QueryDict) else raw_body.decode("utf-8")
    if algorithm.upper() == HMAC_SHA256:
        key = tenant.webhook_signing_key.reveal()
        if not key:
            return False  # announced HMAC-SHA256 but this tenant has no shared key configured
        return RequestValidator(key).validate(url, payload, signature, algorithm=HMAC_SHA256)
    return any(
        RequestValidator(token).validate(url, payload, signature, algorithm=HMAC_SHA1)
        for token in tenant.signing_tokens()
    )


def twilio_webhook(view):
    """Decorate a Twilio-facing view: `view(request, hook: WebhookRequest) -> HttpResponse`."""

    @csrf_exempt
    @login_not_required
    @wraps(view)
    def gateway(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return _gateway_checked(view, request, *args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            # Only the connection-level errors: a DataError or IntegrityError is a bug to see.
            event = "twilio.webhook.database_unavailable"
            logger.warning(event, extra={"event": event, "path": request.path, "error": type(exc).__name__})
            return HttpResponse("Service unavailable: database unreachable.\n", status=503, content_type="text/plain")

    return gateway


def _gateway_checked(view, request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """The gateway's checks in order (module docstring), then the view."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        params, raw_body = _parse_body(request)
    except (ValueError, RequestDataTooBig, SuspiciousOperation) as exc:
        return _reject(request, 400, "twilio.webhook.malformed_body", why=str(exc) or "malformed body")
    account_sid = str(params.get("AccountSid") or "")
    if not account_sid:
        return _reject(request, 403, "twilio.webhook.missing_account_sid")
    if not ACCOUNT_SID_SHAPE.fullmatch(account_sid):
        return _reject(request, 403, "twilio.webhook.unknown_account_sid", account_sid=repr(account_sid[:34]))
    tenant = Tenant.objects.filter(account_sid=account_sid).first()
    if tenant is None:
        return _reject(request, 403, "twilio.webhook.unknown_account_sid", account_sid=account_sid)
    if not request.headers.get("X-Twilio-Signature"):
        return _reject(request, 403, "twilio.webhook.missing_signature", tenant=tenant)
    if not signature_is_valid(tenant=tenant, request=request, params=params, raw_body=raw_body):
        return _reject(
            request,
            403,
            "twilio.webhook.invalid_signature",
            tenant=tenant,
            sender=phone_mask(str(params.get("From", ""))),
        )
    # Suspended and closed tenants' signed callbacks are still recorded: late status
    # callbacks matter. Only sending stops.
    return view(request, WebhookRequest(tenant, params, raw_body), *args, **kwargs)


def require_fields(hook: WebhookRequest, *names: str) -> HttpResponse | None:
    """400 naming the missing fields of a signed payload, or None when all are present."""
    missing = [n for n in names if not str(hook.params.get(n) or "").strip()]
    if missing:
        logger.warning("twilio.webhook.missing_fields", extra={"tenant": hook.tenant.slug, "fields": missing})
        return HttpResponseBadRequest(f"Bad request: missing {', '.join(missing)}.\n", content_type="text/plain")
    return None


def twiml(body: str = "") -> HttpResponse:
    return HttpResponse(f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>', content_type="text/xml")
