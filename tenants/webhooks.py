"""The signed-webhook gateway every Twilio-facing view goes through.

Checks run in a fixed order, like Sentry's webhook handlers: method (405), body size and
shape (400), tenant by `AccountSid` (403; its shape is checked before the lookup), signature
with THAT tenant's credentials (403).
Only then does the view run. A database that cannot be reached (down, restarting, a cut
connection) answers 503 with one log line, not a 500 with a traceback: nothing was committed,
and the resync recovers what Twilio will not resend. A rejection writes nothing of the payload: it logs one
structured line without secrets and bumps a per-tenant counter support staff can see
(`tenants.rejections`: counted in the cache, so a flood of forgeries is not a flood of writes).

A tenant and its decrypted signing credentials are held in process memory per AccountSid
(`webhook_credentials`) for at most `CREDENTIALS_HOLD_SECONDS`, so a webhook costs no tenant
query and no decryption. Every save or delete of any tenant (a token rotation, a suspension, a
new signing key, a settings edit) replaces one version token in the shared cache
(`webhook_credentials_changed`, connected in `TenantsConfig.ready`), and every request compares
it: all processes drop what they hold at their next request. Without a reachable cache nothing
is held. Apps keep what they derive from a tenant for their webhooks (messaging: its keywords)
in `WebhookRequest.held`, dropped with the credentials; a model whose change must reach them
connects `webhook_credentials_changed` to its signals.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError, connection, transaction
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


#: How long a process holds a tenant's credentials even if no change is announced (a backstop).
CREDENTIALS_HOLD_SECONDS = 60
#: How often a process reads the shared version token: a change made in another process (a
#: token rotation, a suspension) takes effect here within this, and a webhook costs no cache
#: round trip in between (on a busy 2-core host that round trip was a third of a callback).
#: A change made in this process takes effect at once.
CREDENTIALS_VERSION_CHECK_SECONDS = 1.0
_CREDENTIALS_VERSION_KEY = "tenants:webhook-credentials:version"


@dataclass(frozen=True)
class WebhookCredentials:
    """A tenant as a webhook sees it: the row, its auth token(s) and HMAC-SHA256 signing key,
    decrypted once. Shared between requests and threads: read-only."""

    tenant: Tenant
    tokens: tuple[str, ...]
    signing_key: str
    version: str | None
    held_until: float
    #: What apps derive from the tenant for their webhooks, held and dropped with the rest.
    memo: dict = field(default_factory=dict)


_held: dict[str, WebhookCredentials] = {}
#: The shared version token as last read, and when (monotonic); None: read it on the next request.
_version_read: tuple[str | None, float] | None = None


def webhook_credentials_changed(**kwargs) -> None:
    """Make every process drop the credentials it holds (a tenant was saved or deleted).

    Replaced now and again after the commit: a process reloading in between would otherwise
    hold the old row under the new token."""
    _credentials_version_bump()
    transaction.on_commit(_credentials_version_bump)


def _credentials_version_bump() -> None:
    global _version_read
    _held.clear()
    _version_read = None
    try:
        cache.set(_CREDENTIALS_VERSION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:  # noqa: BLE001 - then nothing is held (webhook_credentials reads it first)
        logger.warning("twilio.webhook.credentials_cache_unavailable", exc_info=True)


def webhook_credentials(account_sid: str) -> WebhookCredentials | None:
    """The tenant holding `account_sid` with its signing credentials, or None (unknown SID).

    The version token is read before the row, so a change committed in between leaves the old
    row under the old token, and the next request reloads it."""
    try:
        version = _credentials_version()
    except Exception:  # noqa: BLE001 - no shared cache: no change would reach us, hold nothing
        version, hold = None, False
    else:
        hold = True
        held = _held.get(account_sid)
        if held is not None and held.version == version and held.held_until > time.monotonic():
            return held
    tenant = Tenant.objects.filter(account_sid=account_sid).first()
    if tenant is None:
        return None
    credentials = WebhookCredentials(
        tenant=tenant,
        tokens=tuple(tenant.signing_tokens()),
        signing_key=tenant.webhook_signing_key.reveal(),
        version=version,
        held_until=time.monotonic() + CREDENTIALS_HOLD_SECONDS,
    )
    if hold:
        _held[account_sid] = credentials
    return credentials


def _credentials_version() -> str | None:
    """The shared version token, read at most every `CREDENTIALS_VERSION_CHECK_SECONDS` (a
    failed read is not remembered: the next request tries again)."""
    global _version_read
    seen = _version_read
    now = time.monotonic()
    if seen is not None and now - seen[1] < CREDENTIALS_VERSION_CHECK_SECONDS:
        return seen[0]
    version = cache.get(_CREDENTIALS_VERSION_KEY)
    _version_read = (version, now)
    return version


class WebhookRequest:
    """What a gateway-approved view receives: the tenant, the signed parameters, and `held`:
    per-tenant data the app may keep until the tenant's credentials are dropped."""

    __slots__ = ("tenant", "params", "raw_body", "held")

    def __init__(self, tenant: Tenant, params: QueryDict | dict, raw_body: bytes, held: dict | None = None) -> None:
        self.tenant = tenant
        self.params = params
        self.raw_body = raw_body
        self.held = {} if held is None else held


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


def signature_is_valid(*, credentials: WebhookCredentials, request: HttpRequest, params, raw_body: bytes) -> bool:
    """Check X-Twilio-Signature with the tenant's auth token(s), or its signing key for HMAC-SHA256."""
    signature = request.headers.get("X-Twilio-Signature", "")
    url = public_url(request)
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings", ""))
    # JSON bodies are signed through bodySHA256 in the URL: validate against the raw body.
    payload = params if isinstance(params, QueryDict) else raw_body.decode("utf-8")
    if algorithm.upper() == HMAC_SHA256:
        key = credentials.signing_key
        if not key:
            return False  # announced HMAC-SHA256 but this tenant has no shared key configured
        return RequestValidator(key).validate(url, payload, signature, algorithm=HMAC_SHA256)
    return any(
        RequestValidator(token).validate(url, payload, signature, algorithm=HMAC_SHA1) for token in credentials.tokens
    )


def twilio_webhook(view):
    """Decorate a Twilio-facing view: `view(request, hook: WebhookRequest) -> HttpResponse`."""

    @csrf_exempt
    @login_not_required
    @wraps(view)
    def gateway(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        deferred = _health_check_defer()
        try:
            try:
                return _gateway_checked(view, request, *args, **kwargs)
            except (OperationalError, InterfaceError):
                if not deferred or connection.in_atomic_block or connection.is_usable():
                    raise
                # The held connection broke since its last request (a database restart, a cut
                # proxy): what the health check would have caught. Nothing was committed by the
                # failed statement and every webhook is idempotent, so run it once more on a new one.
                connection.close()
                return _gateway_checked(view, request, *args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            # Only the connection-level errors: a DataError or IntegrityError is a bug to see.
            event = "twilio.webhook.database_unavailable"
            logger.warning(event, extra={"event": event, "path": request.path, "error": type(exc).__name__})
            return HttpResponse("Service unavailable: database unreachable.\n", status=503, content_type="text/plain")

    return gateway


def _health_check_defer() -> bool:
    """Skip the `SELECT 1` that `CONN_HEALTH_CHECKS` sends before a held connection's first query
    of each request: a webhook is one statement, so that check is half its round trips. True when
    skipped: the gateway then replaces a connection found broken and runs the request again,
    which is what the check is for. Pages keep the check."""
    if connection.connection is None or not connection.health_check_enabled or connection.health_check_done:
        return False
    connection.health_check_done = True
    return True


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
    credentials = webhook_credentials(account_sid)
    if credentials is None:
        return _reject(request, 403, "twilio.webhook.unknown_account_sid", account_sid=account_sid)
    tenant = credentials.tenant
    if not request.headers.get("X-Twilio-Signature"):
        return _reject(request, 403, "twilio.webhook.missing_signature", tenant=tenant)
    if not signature_is_valid(credentials=credentials, request=request, params=params, raw_body=raw_body):
        return _reject(
            request,
            403,
            "twilio.webhook.invalid_signature",
            tenant=tenant,
            sender=phone_mask(str(params.get("From", ""))),
        )
    # Suspended and closed tenants' signed callbacks are still recorded: late status
    # callbacks matter. Only sending stops.
    return view(request, WebhookRequest(tenant, params, raw_body, credentials.memo), *args, **kwargs)


def require_fields(hook: WebhookRequest, *names: str) -> HttpResponse | None:
    """400 naming the missing fields of a signed payload, or None when all are present."""
    missing = [n for n in names if not str(hook.params.get(n) or "").strip()]
    if missing:
        logger.warning("twilio.webhook.missing_fields", extra={"tenant": hook.tenant.slug, "fields": missing})
        return HttpResponseBadRequest(f"Bad request: missing {', '.join(missing)}.\n", content_type="text/plain")
    return None


def twiml(body: str = "") -> HttpResponse:
    return HttpResponse(f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>', content_type="text/xml")
