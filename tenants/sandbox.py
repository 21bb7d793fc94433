"""A local stand-in for Twilio's REST API (the "sandbox").

Why: there is no internet here, and the portal must be exercised end to end with the real
twilio-python SDK: real HTTP, Basic auth, Twilio's error JSON (so the SDK raises
`TwilioRestException` with the right `.code`), Twilio's pagination, and status callbacks and
inbound webhooks signed exactly as Twilio signs them (`X-Twilio-Signature`, HMAC-SHA1 with the
account's current primary auth token). State is in memory, guarded by one lock.

Run it with `python manage.py twilio_sandbox` and set `TWILIO_API_BASE_URL` to the base URL it
prints; in tests use `TwilioSandbox(...).start()` and point every SDK domain at `base_url`
(`client.api.base_url = sandbox.base_url`, same for verify, messaging, accounts) or use an
`http_client` that rewrites scheme and host. Every product lives on the one host: `/2010-04-01/…`
(api), `/v2/…` (Verify), `/v1/Services…` (Messaging), `/v1/AuthTokens…` (Accounts).

Authentication (HTTP Basic):
- `AccountSid:auth_token` of the parent or a known subaccount (primary or secondary token);
- `SK…:secret` of an API key the sandbox issued: it acts for its own account only and, like a
  Twilio *standard* key, may not manage accounts or keys;
- with `auto_register_accounts=True`, an unknown `AC` + 32 hex sid with any token is registered
  on first use as an active subaccount of the parent with that token.
- Anything else answers 401 / 20003. Credentials of a suspended or closed account also answer
  401 / 20003 (Twilio refuses them). The parent's credentials may act on its subaccounts' v2010
  resources; other cross-account requests answer 404 / 20404. The parent acting on a suspended or
  closed subaccount cannot send messages or place calls: 400 / 10001 "Account is not active".

Synchronous magic destinations (POST Messages.json with this `To` answers HTTP 400):
    +15005550001 -> 21211 invalid To       +15005550002 -> 21612 unsupported From/To pair
    +15005550003 -> 21408 region disabled  +15005550004 -> 21610 recipient opted out (STOP)
    +15005550009 -> 21614 To not a mobile number
Asynchronous outcomes (accepted, then status callbacks):
    +15005550010 -> sent, undelivered 30003     +15005550011 -> sent, undelivered 30006
    +15005550012 -> failed 30008                +15005550013 -> sent, undelivered 21610
    any other valid To -> sent, delivered (preceded by queued when sent via a Messaging Service)
Calls: +15005550020 -> busy, +15005550021 -> no-answer, +15005550022 -> failed; any other To
    rings, is answered (the call's Url is fetched, signed) and completes.

Other Twilio behaviours reproduced: `From` must be a number the account owns (21606; the magic
test sender +15005550006 is always accepted); a message sent through a Messaging Service answers
`accepted` with `from` null and gets its sender from the service's pool (21703 when empty);
inbound STOP/START keywords (via /sandbox/inbound) maintain Twilio's own opt-out list per sender
(or per Messaging Service), later sends answer 21610 until START; in-flight messages can't be
deleted (20009); call status callbacks follow `StatusCallbackEvent` (default: completed only);
a webhook is retried once on connection failure or timeout; Verify codes expire after 10 min,
5 wrong checks then 60202, more than 5 sends to one number within 10 min gives 60203.

Sandbox control endpoints (not Twilio; no authentication; form or JSON bodies):
    GET    /sandbox/                          health and this list
    GET    /sandbox/accounts                  accounts (no tokens)
    POST   /sandbox/accounts/{AC}             register/flag an account: AuthToken, FriendlyName,
                                              twilio_suspended=true|false (Twilio-side suspension:
                                              status changes then answer 21478)
    POST   /sandbox/accounts/{AC}/numbers     seed a number: PhoneNumber (or AreaCode), SmsUrl,
                                              VoiceUrl, StatusCallback, FriendlyName, ...
    POST   /sandbox/faults                    {"path_contains", "status", "code", "count",
                                              "message", "method", "mode": "error" |
                                              "accept_then_drop"}: the next `count` matching API
                                              requests fail, or are processed and then the
                                              connection is closed without any response
    GET    /sandbox/faults, DELETE /sandbox/faults
    GET    /sandbox/messages[?to=&account_sid=]   every stored message (JSON list)
    GET    /sandbox/calls                     every stored call
    GET    /sandbox/webhooks                  the last webhooks the sandbox sent, with outcomes
    GET    /sandbox/verify-codes?to=+1...     issued Verify codes, newest first
    POST   /sandbox/inbound                   AccountSid, From, To, Body[, Url]: POST a signed
                                              inbound-SMS webhook (Url defaults to the number's
                                              or its Messaging Service's inbound URL); answers
                                              {"status_code", "body", "url", "message_sid"}
    POST   /sandbox/reset                     forget everything but the parent account
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import math
import random
import re
import secrets
import socket
import string
import threading
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

logger = logging.getLogger("commsportal.sandbox")

API = "/2010-04-01"
API_VERSION = "2010-04-01"
ACCOUNT_SID_RE = re.compile(r"AC[0-9a-f]{32}")
E164_RE = re.compile(r"\+[1-9]\d{6,14}")
AREA_CODE_RE = re.compile(r"[2-9]\d\d")
ALPHA_SENDER_RE = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")

DEV_PARENT_ACCOUNT_SID = "AC" + "5a" * 16
DEV_PARENT_AUTH_TOKEN = "0123456789abcdef" * 2

MAGIC_FROM = "+15005550006"
SYNC_MAGIC_TO = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +15005550003.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
# To -> the status callbacks after acceptance: (status, error_code) in order.
ASYNC_MESSAGE_OUTCOMES: dict[str, list[tuple[str, int | None]]] = {
    "+15005550010": [("sent", None), ("undelivered", 30003)],
    "+15005550011": [("sent", None), ("undelivered", 30006)],
    "+15005550012": [("failed", 30008)],
    "+15005550013": [("sent", None), ("undelivered", 21610)],
}
CALL_OUTCOMES = {"+15005550020": "busy", "+15005550021": "no-answer", "+15005550022": "failed"}
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21610: "Attempt to send to unsubscribed recipient",
    30003: "Unreachable destination handset",
    30006: "Landline or unreachable carrier",
    30008: "Unknown error",
}
OPT_OUT_KEYWORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN_KEYWORDS = {"START", "YES", "UNSTOP"}
HELP_KEYWORDS = {"HELP", "INFO"}
IN_FLIGHT = {"accepted", "scheduled", "queued", "sending"}
TOLL_FREE_PREFIXES = ("833", "844", "855", "866", "877", "888")
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
VERIFY_TTL = timedelta(minutes=10)
VERIFY_MAX_CHECKS = 5
VERIFY_MAX_SENDS = 5
WEBHOOK_TIMEOUT = 15.0


# --------------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc2822(value: datetime | None) -> str | None:
    """v2010 resources use RFC 2822 dates, e.g. 'Thu, 24 Aug 2023 05:01:45 +0000'."""
    return None if value is None else format_datetime(value.replace(microsecond=0))


def _iso(value: datetime | None) -> str | None:
    """v1/v2 domains use ISO 8601 dates."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def mask_secret(value: str) -> str:
    """Show only the last 4 characters of a token or secret."""
    return "*" * 4 + value[-4:] if value else ""


def _mask_phone(value: str) -> str:
    return "*" * max(len(value) - 4, 0) + value[-4:]


def _truthy(value: str | None) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _format_phone(number: str) -> str:
    """Twilio's friendly_name for a NANP number: '(415) 555-0123'."""
    if number.startswith("+1") and len(number) == 12:
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


def _split_channel(address: str) -> tuple[str, str]:
    """'whatsapp:+1415…' -> ('whatsapp:', '+1415…'); plain numbers have no prefix."""
    prefix, sep, rest = address.partition(":")
    if sep and prefix.lower() in {"whatsapp", "messenger", "rcs"}:
        return prefix.lower() + ":", rest
    return "", address


def _num_segments(body: str) -> int:
    if not body:
        return 1
    if all(ch in GSM7 for ch in body):
        return 1 if len(body) <= 160 else math.ceil(len(body) / 153)
    return 1 if len(body) <= 70 else math.ceil(len(body) / 67)


def _is_valid_number(number: str) -> bool:
    """E.164, and valid per phonenumbers when that package is importable."""
    if not E164_RE.fullmatch(number):
        return False
    try:
        import phonenumbers
    except ImportError:  # pragma: no cover - phonenumbers is a project dependency
        return True
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return False


def _parse_date_filter(name: str, value: str) -> tuple[datetime, bool]:
    """Parse a DateSent filter: returns (moment, is_date_only)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.fromisoformat(value).replace(tzinfo=UTC), True
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), False
    except ValueError:
        raise TwilioApiError(400, 20001, f"Invalid value for {name}: {value}") from None


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """Drop the sandbox's private bookkeeping keys (leading underscore) from a record."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


class TwilioApiError(Exception):
    """An error answered in Twilio's JSON shape, which the SDK turns into TwilioRestException."""

    def __init__(self, status: int, code: int, message: str | None = None):
        self.status = status
        self.code = code
        self.message = message or ERROR_MESSAGES.get(code, "Error")
        super().__init__(f"{status} {code} {self.message}")

    def payload(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def _not_found(path: str) -> TwilioApiError:
    return TwilioApiError(404, 20404, f"The requested resource {path} was not found")


@dataclass
class Account:
    sid: str
    auth_token: str
    friendly_name: str
    owner_account_sid: str
    status: str = "active"
    secondary_auth_token: str | None = None
    secondary_created: datetime | None = None
    twilio_suspended: bool = False
    date_created: datetime = field(default_factory=_now)
    date_updated: datetime = field(default_factory=_now)

    def token_matches(self, token: str) -> bool:
        candidates = [self.auth_token, self.secondary_auth_token]
        return any(c is not None and hmac.compare_digest(c.encode(), token.encode()) for c in candidates)


@dataclass
class Fault:
    path_contains: str
    status: int = 500
    code: int = 20500
    count: int = 1
    mode: str = "error"
    method: str | None = None
    message: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.path_contains in path and (self.method is None or self.method == method)


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    headers: Any
    host: str
    params: dict[str, str] = field(default_factory=dict)
    principal: Account | None = None
    via_key: bool = False

    def get(self, name: str, default: str | None = None) -> str | None:
        for source in (self.form, self.query):
            if name in source:
                return source[name][0]
        return default

    def getlist(self, name: str) -> list[str]:
        return self.form.get(name) or self.query.get(name) or []


@dataclass
class _Reply:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


class _Route(NamedTuple):
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: str
    control: bool
    locked: bool


def _route(method: str, template: str, handler: str, *, locked: bool = True) -> _Route:
    regex = ""
    for piece in re.split(r"(\{\w+\})", template):
        if piece.startswith("{"):
            regex += f"(?P<{piece[1:-1]}>[A-Za-z0-9]+)"
        else:
            regex += re.escape(piece)
    control = template.startswith("/sandbox")
    return _Route(method, template, re.compile(regex), handler, control, locked)


_A = API + "/Accounts/{AccountSid}"
ROUTES = [
    # Accounts and keys (v2010)
    _route("GET", API + "/Accounts.json", "list_accounts"),
    _route("POST", API + "/Accounts.json", "create_account"),
    _route("GET", API + "/Accounts/{AccountSid}.json", "fetch_account"),
    _route("POST", API + "/Accounts/{AccountSid}.json", "update_account"),
    _route("GET", _A + "/Keys.json", "list_keys"),
    _route("POST", _A + "/Keys.json", "create_key"),
    _route("GET", _A + "/Keys/{KeySid}.json", "fetch_key"),
    _route("POST", _A + "/Keys/{KeySid}.json", "update_key"),
    _route("DELETE", _A + "/Keys/{KeySid}.json", "delete_key"),
    # Numbers
    _route("GET", _A + "/IncomingPhoneNumbers.json", "list_numbers"),
    _route("POST", _A + "/IncomingPhoneNumbers.json", "create_number"),
    _route("GET", _A + "/IncomingPhoneNumbers/{Sid}.json", "fetch_number"),
    _route("POST", _A + "/IncomingPhoneNumbers/{Sid}.json", "update_number"),
    _route("DELETE", _A + "/IncomingPhoneNumbers/{Sid}.json", "delete_number"),
    _route("GET", _A + "/AvailablePhoneNumbers/{Country}/{Kind}.json", "available_numbers"),
    # Messages and calls
    _route("GET", _A + "/Messages.json", "list_messages"),
    _route("POST", _A + "/Messages.json", "create_message"),
    _route("GET", _A + "/Messages/{Sid}.json", "fetch_message"),
    _route("POST", _A + "/Messages/{Sid}.json", "update_message"),
    _route("DELETE", _A + "/Messages/{Sid}.json", "delete_message"),
    _route("GET", _A + "/Calls.json", "list_calls"),
    _route("POST", _A + "/Calls.json", "create_call"),
    _route("GET", _A + "/Calls/{Sid}.json", "fetch_call"),
    _route("POST", _A + "/Calls/{Sid}.json", "update_call"),
    # Verify v2
    _route("GET", "/v2/Services", "list_verify_services"),
    _route("POST", "/v2/Services", "create_verify_service"),
    _route("GET", "/v2/Services/{ServiceSid}", "fetch_verify_service"),
    _route("POST", "/v2/Services/{ServiceSid}", "update_verify_service"),
    _route("DELETE", "/v2/Services/{ServiceSid}", "delete_verify_service"),
    _route("POST", "/v2/Services/{ServiceSid}/Verifications", "create_verification"),
    _route("GET", "/v2/Services/{ServiceSid}/Verifications/{Sid}", "fetch_verification"),
    _route("POST", "/v2/Services/{ServiceSid}/Verifications/{Sid}", "update_verification"),
    _route("POST", "/v2/Services/{ServiceSid}/VerificationCheck", "check_verification"),
    # Messaging v1
    _route("GET", "/v1/Services", "list_messaging_services"),
    _route("POST", "/v1/Services", "create_messaging_service"),
    _route("GET", "/v1/Services/{ServiceSid}", "fetch_messaging_service"),
    _route("POST", "/v1/Services/{ServiceSid}", "update_messaging_service"),
    _route("DELETE", "/v1/Services/{ServiceSid}", "delete_messaging_service"),
    _route("GET", "/v1/Services/{ServiceSid}/PhoneNumbers", "list_service_numbers"),
    _route("POST", "/v1/Services/{ServiceSid}/PhoneNumbers", "add_service_number"),
    _route("GET", "/v1/Services/{ServiceSid}/PhoneNumbers/{Sid}", "fetch_service_number"),
    _route("DELETE", "/v1/Services/{ServiceSid}/PhoneNumbers/{Sid}", "remove_service_number"),
    # Accounts v1
    _route("POST", "/v1/AuthTokens/Secondary", "create_secondary_token"),
    _route("DELETE", "/v1/AuthTokens/Secondary", "delete_secondary_token"),
    _route("POST", "/v1/AuthTokens/Promote", "promote_secondary_token"),
    # Sandbox control (no auth)
    _route("GET", "/sandbox/", "ctl_index"),
    _route("GET", "/sandbox", "ctl_index"),
    _route("GET", "/sandbox/accounts", "ctl_accounts"),
    _route("POST", "/sandbox/accounts/{AccountSid}", "ctl_account"),
    _route("POST", "/sandbox/accounts/{AccountSid}/numbers", "ctl_seed_number"),
    _route("GET", "/sandbox/faults", "ctl_list_faults"),
    _route("POST", "/sandbox/faults", "ctl_add_fault"),
    _route("DELETE", "/sandbox/faults", "ctl_clear_faults"),
    _route("GET", "/sandbox/messages", "ctl_messages"),
    _route("GET", "/sandbox/calls", "ctl_calls"),
    _route("GET", "/sandbox/webhooks", "ctl_webhooks"),
    _route("GET", "/sandbox/verify-codes", "ctl_verify_codes"),
    _route("POST", "/sandbox/inbound", "ctl_inbound", locked=False),
    _route("POST", "/sandbox/reset", "ctl_reset"),
]


# --------------------------------------------------------------------------- HTTP layer


class _HttpHandler(BaseHTTPRequestHandler):
    """Translates HTTP to `TwilioSandbox.handle_http` and back; keeps connections alive."""

    protocol_version = "HTTP/1.1"
    server_version = "TwilioSandbox/1.0"
    timeout = 60
    sandbox: TwilioSandbox

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.sandbox.handle_http(self.command, self.path, self.headers, body)
        if reply.drop:
            # Simulates Twilio (or the network) dying after the request was accepted.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        data = b"" if reply.payload is None else json.dumps(reply.payload).encode()
        self.send_response(reply.status)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)


# --------------------------------------------------------------------------- the sandbox


class TwilioSandbox:
    """In-memory Twilio REST API served over HTTP for the real SDK (see module docstring)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        parent_account_sid: str,
        parent_auth_token: str,
        callback_delay: float = 0.2,
        auto_register_accounts: bool = True,
    ):
        self.parent_account_sid = parent_account_sid
        self.callback_delay = callback_delay
        self.auto_register_accounts = auto_register_accounts
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._parent_token = parent_auth_token
        self._reset_state()
        handler = type("_BoundHandler", (_HttpHandler,), {"sandbox": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True

    def _reset_state(self) -> None:
        with self._lock:
            self._seq = 0
            self._accounts: dict[str, Account] = {}
            self._keys: dict[str, dict[str, Any]] = {}
            self._numbers: dict[str, dict[str, Any]] = {}
            self._messages: dict[str, dict[str, Any]] = {}
            self._calls: dict[str, dict[str, Any]] = {}
            self._verify_services: dict[str, dict[str, Any]] = {}
            self._verifications: dict[str, dict[str, Any]] = {}
            self._verify_sends: dict[tuple[str, str], deque[datetime]] = {}
            self._verify_codes: list[dict[str, Any]] = []
            self._messaging_services: dict[str, dict[str, Any]] = {}
            self._opt_outs: set[tuple[str, str, str]] = set()
            self._faults: list[Fault] = []
            self._webhooks: deque[dict[str, Any]] = deque(maxlen=1000)
            self._accounts[self.parent_account_sid] = Account(
                sid=self.parent_account_sid,
                auth_token=self._parent_token,
                friendly_name="Sandbox parent account",
                owner_account_sid=self.parent_account_sid,
            )

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    def start(self) -> TwilioSandbox:
        """Serve on a daemon thread; returns self so `TwilioSandbox(...).start()` chains."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() returns quickly
            name="twilio-sandbox",
            daemon=True,
        )
        self._thread.start()
        logger.info("Twilio sandbox listening on %s", self.base_url)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (management command)."""
        try:
            self._server.serve_forever()
        finally:
            self._stopping.set()
            self._server.server_close()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> TwilioSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- Python helpers

    def register_account(self, sid: str, auth_token: str | None = None, friendly_name: str | None = None) -> Account:
        """Make `sid` a known subaccount of the parent (idempotent)."""
        with self._lock:
            account = self._accounts.get(sid)
            if account is None:
                account = Account(
                    sid=sid,
                    auth_token=auth_token or secrets.token_hex(16),
                    friendly_name=friendly_name or f"Sandbox subaccount {sid[-4:]}",
                    owner_account_sid=self.parent_account_sid,
                )
                self._accounts[sid] = account
                logger.info("Registered account %s", sid)
            return account

    def seed_number(self, account_sid: str, phone_number: str | None = None, **fields: str):
        """Give an account a number (kwargs are IncomingPhoneNumber params, e.g. SmsUrl)."""
        with self._lock:
            account = self._accounts.get(account_sid) or self.register_account(account_sid)
            number = phone_number or self._generate_numbers("415", "Local", 1)[0]
            return _public(self._provision_number(account, number, fields))

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_public(m) for m in self._sorted(self._messages.values(), reverse=True)]

    def verify_codes(self, to: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            codes = [c for c in self._verify_codes if to is None or c["to"] == to]
            return [dict(c) for c in reversed(codes)]

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def webhooks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(w) for w in self._webhooks]

    # ----------------------------------------------------------------- dispatch

    def handle_http(self, method: str, raw_path: str, headers: Any, body: bytes) -> _Reply:
        """Route one HTTP request: fault injection, authentication, the handler, errors."""
        parts = urlsplit(raw_path)
        content_type = (headers.get("Content-Type") or "").lower()
        try:
            form = self._parse_body(body, content_type)
        except TwilioApiError as err:
            return _Reply(err.status, err.payload())
        req = _Request(
            method=method,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            form=form,
            headers=headers,
            host=headers.get("Host") or urlsplit(self.base_url).netloc,
        )
        route, params = self._match(method, req.path)
        if route is None:
            return _Reply(404 if params is None else 405, self._route_error(req, params))
        req.params = params
        fault = None if route.control else self._take_fault(req)
        if fault is not None and fault.mode == "error":
            err = TwilioApiError(fault.status, fault.code, fault.message)
            logger.info("Injected fault %s on %s %s", fault.code, method, req.path)
            return _Reply(fault.status, err.payload())
        try:
            if route.locked:
                with self._lock:
                    reply = self._call(route, req)
            else:
                reply = self._call(route, req)
        except TwilioApiError as err:
            reply = _Reply(err.status, err.payload())
            if err.status == 401:
                reply.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        except Exception:  # a sandbox bug must answer 500, never kill the connection thread
            logger.exception("Sandbox error on %s %s", method, req.path)
            reply = _Reply(500, TwilioApiError(500, 20500, "Internal Server Error").payload())
        if fault is not None and fault.mode == "accept_then_drop":
            logger.info("Injected accept_then_drop on %s %s", method, req.path)
            reply.drop = True
        return reply

    def _call(self, route: _Route, req: _Request) -> _Reply:
        if not route.control:
            self._authenticate(req)
        result = getattr(self, "_h_" + route.handler)(req)
        return result if isinstance(result, _Reply) else _Reply(*result)

    @staticmethod
    def _parse_body(body: bytes, content_type: str) -> dict[str, list[str]]:
        if not body:
            return {}
        text = body.decode("utf-8", errors="replace")
        if "json" in content_type:
            try:
                data = json.loads(text)
            except ValueError:
                raise TwilioApiError(400, 20001, "Invalid JSON body") from None
            if not isinstance(data, dict):
                return {}
            return {k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in data.items()}
        return parse_qs(text, keep_blank_values=True)

    @staticmethod
    def _match(method: str, path: str) -> tuple[_Route | None, dict[str, str] | None]:
        """Returns (route, params); (None, {}) when the path exists for another method."""
        path_known = False
        for route in ROUTES:
            found = route.pattern.fullmatch(path)
            if found:
                if route.method == method:
                    return route, found.groupdict()
                path_known = True
        return None, ({} if path_known else None)

    @staticmethod
    def _route_error(req: _Request, params: dict[str, str] | None) -> dict[str, Any]:
        if params is None:
            return _not_found(req.path).payload()
        return TwilioApiError(405, 20004, "Method not allowed").payload()

    def _take_fault(self, req: _Request) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.count > 0 and fault.matches(req.method, req.path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # ----------------------------------------------------------------- auth

    def _authenticate(self, req: _Request) -> None:
        header = req.headers.get("Authorization") or ""
        if not header.lower().startswith("basic "):
            raise TwilioApiError(401, 20003, "Authenticate")
        try:
            username, _, secret = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise TwilioApiError(401, 20003, "Authenticate") from None
        account, via_key = None, False
        if username.startswith("SK"):
            key = self._keys.get(username)
            if key and hmac.compare_digest(key["_secret"].encode(), secret.encode()):
                account, via_key = self._accounts.get(key["account_sid"]), True
        elif ACCOUNT_SID_RE.fullmatch(username):
            account = self._accounts.get(username)
            if account is None and self.auto_register_accounts and secret:
                account = self.register_account(username, secret)
            elif account is not None and not account.token_matches(secret):
                account = None
        if account is None or account.status != "active":
            raise TwilioApiError(401, 20003, "Authenticate")
        req.principal, req.via_key = account, via_key

    def _scoped_account(self, req: _Request) -> Account:
        """The account in the path, if the caller may act on it (the parent may act on its
        subaccounts' v2010 resources, an API key only on its own account)."""
        target = self._accounts.get(req.params["AccountSid"])
        principal = req.principal
        assert principal is not None
        if target is None or not (
            target.sid == principal.sid or (not req.via_key and target.owner_account_sid == principal.sid)
        ):
            raise _not_found(req.path)
        return target

    @staticmethod
    def _require_auth_token(req: _Request, what: str) -> None:
        if req.via_key:
            raise TwilioApiError(403, 20403, f"API keys cannot manage {what}")

    @staticmethod
    def _require_active(account: Account) -> None:
        if account.status != "active":
            raise TwilioApiError(400, 10001, "Account is not active")

    # ----------------------------------------------------------------- pagination

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @staticmethod
    def _sorted(records: Any, reverse: bool = False) -> list[dict[str, Any]]:
        return sorted(records, key=lambda r: r["_seq"], reverse=reverse)

    @staticmethod
    def _page_window(req: _Request, default_size: int = 50) -> tuple[int, int]:
        try:
            size = max(1, min(int(req.get("PageSize") or default_size), 1000))
            page = max(0, int(req.get("Page") or 0))
        except ValueError:
            raise TwilioApiError(400, 20001, "Invalid paging parameters") from None
        return page, size

    def _v2010_page(self, req: _Request, key: str, items: list[dict[str, Any]]) -> _Reply:
        """v2010 list shape: first/next/previous_page_uri relative to the API host."""
        page, size = self._page_window(req)
        start = page * size
        chunk = items[start : start + size]
        filters = [
            (k, v) for k, values in req.query.items() if k not in {"Page", "PageSize", "PageToken"} for v in values
        ]

        def uri(n: int) -> str:
            paging = [("PageSize", size), ("Page", n)]
            if n:
                paging.append(("PageToken", f"PA{n * size}"))
            return f"{req.path}?{urlencode(filters + paging)}"

        return _Reply(
            200,
            {
                key: [_public(item) for item in chunk],
                "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1) if start + size < len(items) else None,
                "previous_page_uri": uri(page - 1) if page > 0 else None,
                "page": page,
                "page_size": size,
                "start": start,
                "end": start + max(len(chunk) - 1, 0),
                "uri": uri(page),
            },
        )

    def _meta_page(self, req: _Request, key: str, items: list[dict[str, Any]]) -> _Reply:
        """v1/v2 list shape: `meta` with absolute URLs (the SDK follows next_page_url)."""
        page, size = self._page_window(req)
        start = page * size
        chunk = items[start : start + size]
        base = f"http://{req.host}{req.path}"

        def url(n: int) -> str:
            paging = {"PageSize": size, "Page": n}
            if n:
                paging["PageToken"] = f"PA{n * size}"
            return f"{base}?{urlencode(paging)}"

        return _Reply(
            200,
            {
                key: [_public(item) for item in chunk],
                "meta": {
                    "page": page,
                    "page_size": size,
                    "first_page_url": url(0),
                    "previous_page_url": url(page - 1) if page > 0 else None,
                    "url": url(page),
                    "next_page_url": url(page + 1) if start + size < len(items) else None,
                    "key": key,
                },
            },
        )

    # ----------------------------------------------------------------- accounts

    def _account_json(self, account: Account) -> dict[str, Any]:
        base = f"{API}/Accounts/{account.sid}"
        subresources = {
            "available_phone_numbers": "AvailablePhoneNumbers",
            "calls": "Calls",
            "incoming_phone_numbers": "IncomingPhoneNumbers",
            "keys": "Keys",
            "messages": "Messages",
        }
        return {
            "auth_token": account.auth_token,
            "date_created": _rfc2822(account.date_created),
            "date_updated": _rfc2822(account.date_updated),
            "friendly_name": account.friendly_name,
            "owner_account_sid": account.owner_account_sid,
            "sid": account.sid,
            "status": account.status,
            "subresource_uris": {k: f"{base}/{v}.json" for k, v in subresources.items()},
            "type": "Full",
            "uri": f"{base}.json",
        }

    def _h_list_accounts(self, req: _Request) -> _Reply:
        principal = req.principal
        assert principal is not None
        visible = [
            a
            for a in self._accounts.values()
            if a.sid == principal.sid or (not req.via_key and a.owner_account_sid == principal.sid)
        ]
        name, status = req.get("FriendlyName"), req.get("Status")
        items = [
            {**self._account_json(a), "_seq": i}
            for i, a in enumerate(sorted(visible, key=lambda a: a.date_created))
            if (name is None or a.friendly_name == name) and (status is None or a.status == status)
        ]
        return self._v2010_page(req, "accounts", items)

    def _h_create_account(self, req: _Request) -> tuple[int, Any]:
        principal = req.principal
        assert principal is not None
        self._require_auth_token(req, "accounts")
        if principal.owner_account_sid != principal.sid:
            raise TwilioApiError(400, 21100, "Subaccounts cannot create subaccounts")
        name = req.get("FriendlyName") or f"SubAccount Created at {_rfc2822(_now())}"
        if len(name) > 64:
            raise TwilioApiError(400, 21100, "FriendlyName must be at most 64 characters")
        account = Account(
            sid=_sid("AC"),
            auth_token=secrets.token_hex(16),
            friendly_name=name,
            owner_account_sid=principal.sid,
        )
        self._accounts[account.sid] = account
        logger.info("Created subaccount %s (%s)", account.sid, name)
        return 201, self._account_json(account)

    def _h_fetch_account(self, req: _Request) -> tuple[int, Any]:
        return 200, self._account_json(self._scoped_account(req))

    def _h_update_account(self, req: _Request) -> tuple[int, Any]:
        account = self._scoped_account(req)
        self._require_auth_token(req, "accounts")
        name, status = req.get("FriendlyName"), req.get("Status")
        if status is not None:
            self._change_status(req, account, status)
        if name is not None:
            account.friendly_name = name
        account.date_updated = _now()
        return 200, self._account_json(account)

    def _change_status(self, req: _Request, account: Account, status: str) -> None:
        if status not in {"active", "suspended", "closed"}:
            raise TwilioApiError(400, 21100, f"Invalid Status: {status}")
        if account.sid == req.principal.sid:
            raise TwilioApiError(400, 21100, "An account's status can only be changed by its parent account")
        if account.twilio_suspended:
            raise TwilioApiError(400, 21478, "This account was suspended by Twilio; its status can't be changed")
        if account.status == "closed" and status != "closed":
            raise TwilioApiError(400, 21100, "A closed account cannot be reopened")
        if status == "closed" and account.status != "closed":
            self._release_account_resources(account)
        logger.info("Account %s: %s -> %s", account.sid, account.status, status)
        account.status = status

    def _release_account_resources(self, account: Account) -> None:
        """Closing releases the numbers (Twilio) and voids keys and the secondary token."""
        for sid in [s for s, n in self._numbers.items() if n["account_sid"] == account.sid]:
            self._release_number(sid)
        for sid in [s for s, k in self._keys.items() if k["account_sid"] == account.sid]:
            del self._keys[sid]
        account.secondary_auth_token = None

    # ----------------------------------------------------------------- keys

    @staticmethod
    def _key_json(key: dict[str, Any]) -> dict[str, Any]:
        return {k: key[k] for k in ("sid", "friendly_name", "date_created", "date_updated")}

    def _key_for(self, req: _Request) -> dict[str, Any]:
        account = self._scoped_account(req)
        key = self._keys.get(req.params["KeySid"])
        if key is None or key["account_sid"] != account.sid:
            raise _not_found(req.path)
        return key

    def _h_list_keys(self, req: _Request) -> _Reply:
        account = self._scoped_account(req)
        self._require_auth_token(req, "API keys")
        keys = [
            {**self._key_json(k), "_seq": k["_seq"]}
            for k in self._sorted(self._keys.values())
            if k["account_sid"] == account.sid
        ]
        return self._v2010_page(req, "keys", keys)

    def _h_create_key(self, req: _Request) -> tuple[int, Any]:
        account = self._scoped_account(req)
        self._require_auth_token(req, "API keys")
        now = _rfc2822(_now())
        key = {
            "sid": _sid("SK"),
            "friendly_name": req.get("FriendlyName") or "",
            "date_created": now,
            "date_updated": now,
            "account_sid": account.sid,
            "_secret": "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32)),
            "_seq": self._next_seq(),
        }
        self._keys[key["sid"]] = key
        logger.info("Created API key %s for %s", key["sid"], account.sid)
        return 201, {**self._key_json(key), "secret": key["_secret"]}

    def _h_fetch_key(self, req: _Request) -> tuple[int, Any]:
        self._require_auth_token(req, "API keys")
        return 200, self._key_json(self._key_for(req))

    def _h_update_key(self, req: _Request) -> tuple[int, Any]:
        self._require_auth_token(req, "API keys")
        key = self._key_for(req)
        if req.get("FriendlyName") is not None:
            key["friendly_name"] = req.get("FriendlyName")
            key["date_updated"] = _rfc2822(_now())
        return 200, self._key_json(key)

    def _h_delete_key(self, req: _Request) -> tuple[int, Any]:
        self._require_auth_token(req, "API keys")
        del self._keys[self._key_for(req)["sid"]]
        return 204, None

    # ----------------------------------------------------------------- numbers

    NUMBER_PARAMS = {
        "FriendlyName": "friendly_name",
        "SmsUrl": "sms_url",
        "SmsMethod": "sms_method",
        "SmsFallbackUrl": "sms_fallback_url",
        "SmsFallbackMethod": "sms_fallback_method",
        "VoiceUrl": "voice_url",
        "VoiceMethod": "voice_method",
        "VoiceFallbackUrl": "voice_fallback_url",
        "VoiceFallbackMethod": "voice_fallback_method",
        "StatusCallback": "status_callback",
        "StatusCallbackMethod": "status_callback_method",
    }

    def _owner_of(self, phone_number: str) -> dict[str, Any] | None:
        return next((n for n in self._numbers.values() if n["phone_number"] == phone_number), None)

    def _provision_number(self, account: Account, phone_number: str, fields: dict[str, str]) -> dict[str, Any]:
        if self._owner_of(phone_number) is not None:
            raise TwilioApiError(400, 21422, f"PhoneNumber {phone_number} is not available")
        now = _rfc2822(_now())
        sid = _sid("PN")
        toll_free = phone_number[2:5] in TOLL_FREE_PREFIXES or phone_number[2:5] == "800"
        number = {
            "account_sid": account.sid,
            "address_sid": None,
            "address_requirements": "none",
            "api_version": API_VERSION,
            "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": now,
            "date_updated": now,
            "friendly_name": _format_phone(phone_number),
            "identity_sid": None,
            "phone_number": phone_number,
            "origin": "twilio",
            "sid": sid,
            "sms_application_sid": None,
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            "status_callback": "",
            "status_callback_method": "POST",
            "trunk_sid": None,
            "uri": f"{API}/Accounts/{account.sid}/IncomingPhoneNumbers/{sid}.json",
            "voice_receive_mode": "voice",
            "voice_application_sid": None,
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            # Unset, Twilio answers "" for the SMS URLs and status callback but null for these.
            "voice_fallback_url": None,
            "voice_method": "POST",
            "voice_url": None,
            "emergency_status": "Inactive",
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "bundle_sid": None,
            "status": "in-use",
            "type": "toll-free" if toll_free else "local",
            "subresource_uris": {
                "assigned_add_ons": f"{API}/Accounts/{account.sid}/IncomingPhoneNumbers/{sid}/AssignedAddOns.json"
            },
            "_seq": self._next_seq(),
        }
        self._apply_number_fields(number, fields)
        self._numbers[sid] = number
        logger.info("Number %s provisioned to %s", phone_number, account.sid)
        return number

    def _apply_number_fields(self, number: dict[str, Any], fields: dict[str, Any]) -> None:
        for param, attr in self.NUMBER_PARAMS.items():
            value = fields.get(param)
            if value is None:
                continue
            if attr.endswith("_method") and value.upper() not in {"GET", "POST"}:
                raise TwilioApiError(400, 21100, f"{param} must be GET or POST")
            number[attr] = value.upper() if attr.endswith("_method") else value
        number["date_updated"] = _rfc2822(_now())

    def _release_number(self, sid: str) -> None:
        number = self._numbers.pop(sid)
        for service in self._messaging_services.values():
            if sid in service["_numbers"]:
                service["_numbers"].remove(sid)
        logger.info("Number %s released", number["phone_number"])

    def _number_for(self, req: _Request) -> dict[str, Any]:
        account = self._scoped_account(req)
        number = self._numbers.get(req.params["Sid"])
        if number is None or number["account_sid"] != account.sid:
            raise _not_found(req.path)
        return number

    def _h_list_numbers(self, req: _Request) -> _Reply:
        account = self._scoped_account(req)
        pattern = (req.get("PhoneNumber") or "").strip()
        name = req.get("FriendlyName")
        items = [
            n
            for n in self._sorted(self._numbers.values())
            if n["account_sid"] == account.sid
            and pattern in n["phone_number"]
            and (name is None or n["friendly_name"] == name)
        ]
        return self._v2010_page(req, "incoming_phone_numbers", items)

    def _h_create_number(self, req: _Request) -> tuple[int, Any]:
        account = self._scoped_account(req)
        self._require_active(account)
        phone_number, area_code = req.get("PhoneNumber"), req.get("AreaCode")
        if phone_number:
            if phone_number == "+15005550000" or not E164_RE.fullmatch(phone_number):
                code = 21422 if phone_number == "+15005550000" else 21421
                raise TwilioApiError(400, code, f"PhoneNumber {phone_number} is not available")
        elif area_code:
            if not AREA_CODE_RE.fullmatch(area_code):
                raise TwilioApiError(400, 21451, f"AreaCode {area_code} is invalid")
            found = self._generate_numbers(area_code, "Local", 1)
            if not found:
                raise TwilioApiError(400, 21452, f"No phone numbers found in area code {area_code}")
            phone_number = found[0]
        else:
            raise TwilioApiError(400, 21421, "A PhoneNumber or AreaCode is required")
        fields = {k: req.get(k) for k in self.NUMBER_PARAMS}
        return 201, _public(self._provision_number(account, phone_number, fields))

    def _h_fetch_number(self, req: _Request) -> tuple[int, Any]:
        return 200, _public(self._number_for(req))

    def _h_update_number(self, req: _Request) -> tuple[int, Any]:
        number = self._number_for(req)
        self._apply_number_fields(number, {k: req.get(k) for k in self.NUMBER_PARAMS})
        new_owner = req.get("AccountSid")
        if new_owner and new_owner != number["account_sid"]:
            # Twilio lets the parent move a number between its subaccounts.
            target = self._accounts.get(new_owner)
            principal = req.principal
            if req.via_key or target is None or target.owner_account_sid != principal.sid:
                raise TwilioApiError(400, 21100, f"Cannot transfer the number to {new_owner}")
            for service in self._messaging_services.values():
                if number["sid"] in service["_numbers"]:
                    service["_numbers"].remove(number["sid"])
            number["account_sid"] = new_owner
            number["uri"] = f"{API}/Accounts/{new_owner}/IncomingPhoneNumbers/{number['sid']}.json"
        return 200, _public(number)

    def _h_delete_number(self, req: _Request) -> tuple[int, Any]:
        self._release_number(self._number_for(req)["sid"])
        return 204, None

    def _generate_numbers(self, area_code: str, kind: str, count: int) -> list[str]:
        """Plausible, phonenumbers-valid US numbers that no account owns yet."""
        rng = random.Random(f"{kind}:{area_code}")
        owned = {n["phone_number"] for n in self._numbers.values()}
        found: list[str] = []
        for _ in range(count * 50):
            if len(found) >= count:
                break
            prefix = area_code if kind != "TollFree" else rng.choice(TOLL_FREE_PREFIXES)
            exchange = rng.randint(200, 999)
            if exchange in {555, 911} or exchange % 100 == 11:
                continue
            candidate = f"+1{prefix}{exchange}{rng.randint(0, 9999):04d}"
            if candidate not in owned and candidate not in found and _is_valid_number(candidate):
                found.append(candidate)
        return found

    def _h_available_numbers(self, req: _Request) -> tuple[int, Any]:
        self._scoped_account(req)
        country, kind = req.params["Country"], req.params["Kind"]
        if country not in {"US", "CA"} or kind not in {"Local", "TollFree", "Mobile"}:
            raise _not_found(req.path)
        area_code = req.get("AreaCode")
        if area_code and not AREA_CODE_RE.fullmatch(area_code):
            raise TwilioApiError(400, 21451, f"AreaCode {area_code} is invalid")
        if kind == "TollFree" and area_code and area_code not in TOLL_FREE_PREFIXES:
            area_code = None
        _, size = self._page_window(req, default_size=30)
        numbers = self._generate_numbers(area_code or "415", kind, min(size, 100))
        if kind == "TollFree" and area_code:
            numbers = [n for n in numbers if n[2:5] == area_code]
        contains = (req.get("Contains") or "").strip("*")
        if contains.isdigit():
            numbers = [n for n in numbers if contains in n]
        items = [
            {
                "friendly_name": _format_phone(n),
                "phone_number": n,
                "lata": "722",
                "locality": "San Francisco" if kind != "TollFree" else None,
                "rate_center": "SNFC CNTRL" if kind != "TollFree" else None,
                "latitude": "37.774900" if kind != "TollFree" else None,
                "longitude": "-122.419400" if kind != "TollFree" else None,
                "region": "CA" if kind != "TollFree" else None,
                "postal_code": "94103" if kind != "TollFree" else None,
                "iso_country": country,
                "address_requirements": "none",
                "beta": False,
                "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            }
            for n in numbers
        ]
        return 200, {"available_phone_numbers": items, "uri": req.path}

    # ----------------------------------------------------------------- messages

    def _message_json(self, msg: dict[str, Any]) -> dict[str, Any]:
        data = _public(msg)
        for key in ("date_created", "date_updated", "date_sent"):
            data[key] = _rfc2822(msg[key])
        return data

    def _message_for(self, req: _Request) -> dict[str, Any]:
        account = self._scoped_account(req)
        msg = self._messages.get(req.params["Sid"])
        if msg is None or msg["account_sid"] != account.sid:
            raise _not_found(req.path)
        return msg

    def _sender_key(self, account_sid: str, phone_number: str, service_sid: str | None) -> str:
        """Twilio's opt-out scope: the Messaging Service when the sender belongs to one."""
        if service_sid:
            return service_sid
        number = self._owner_of(phone_number)
        if number is not None and number["account_sid"] == account_sid:
            service = self._service_of_number(number["sid"])
            if service is not None:
                return service["sid"]
        return phone_number

    def _h_create_message(self, req: _Request) -> tuple[int, Any]:
        account = self._scoped_account(req)
        self._require_active(account)
        to = (req.get("To") or "").strip()
        if not to:
            raise TwilioApiError(400, 21604, "A 'To' phone number is required.")
        channel, to_number = _split_channel(to)
        if to_number in SYNC_MAGIC_TO:
            raise TwilioApiError(400, *SYNC_MAGIC_TO[to_number])
        if not E164_RE.fullmatch(to_number):
            raise TwilioApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        body = req.get("Body") or ""
        media = req.getlist("MediaUrl")
        if not body and not media and not req.get("ContentSid"):
            raise TwilioApiError(400, 21602, "Message body is required.")
        if len(body) > 1600:
            raise TwilioApiError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        service_sid = req.get("MessagingServiceSid")
        sender = self._resolve_sender(account, req.get("From"), service_sid, to)
        if sender == to:
            raise TwilioApiError(400, 21266, "'To' and 'From' number cannot be the same")
        opt_out_key = (account.sid, self._sender_key(account.sid, sender, service_sid), to_number)
        if opt_out_key in self._opt_outs:
            raise TwilioApiError(400, 21610, ERROR_MESSAGES[21610])
        scheduled = self._schedule_time(req, service_sid)
        status = "scheduled" if scheduled else ("accepted" if service_sid else "queued")
        callback = req.get("StatusCallback")
        if not callback and service_sid:
            callback = self._messaging_services[service_sid]["status_callback"] or None
        now = _now()
        sid = _sid("SM")
        msg = {
            "account_sid": account.sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": None if service_sid and not req.get("From") else sender,
            "messaging_service_sid": service_sid,
            "num_media": str(len(media)),
            "num_segments": str(_num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": status,
            "subresource_uris": {"media": f"{API}/Accounts/{account.sid}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"{API}/Accounts/{account.sid}/Messages/{sid}.json",
            "_sender": sender,
            "_media": media,
            "_status_callback": callback,
            "_send_at": scheduled,
            "_seq": self._next_seq(),
        }
        self._messages[sid] = msg
        logger.info("Message %s %s -> %s (%s)", sid, sender, _mask_phone(to), status)
        if not scheduled:
            self._spawn(self._message_lifecycle, sid)
        return 201, self._message_json(msg)

    def _resolve_sender(self, account: Account, from_: str | None, service_sid: str | None, to: str) -> str:
        if not from_ and not service_sid:
            raise TwilioApiError(400, 21603, "A 'From' phone number is required.")
        if service_sid:
            service = self._messaging_services.get(service_sid)
            if service is None or service["account_sid"] != account.sid:
                raise TwilioApiError(400, 21701, f"The Messaging Service Sid {service_sid} is invalid.")
            if not from_:
                pool = [self._numbers[s]["phone_number"] for s in service["_numbers"]]
                if not pool:
                    raise TwilioApiError(
                        400,
                        21703,
                        "The Messaging Service does not have a phone number available to send a message",
                    )
                return pool[zlib.crc32(to.encode()) % len(pool)]  # sticky sender
        assert from_ is not None
        channel, number = _split_channel(from_)
        if ALPHA_SENDER_RE.fullmatch(from_) and not channel:
            if _split_channel(to)[1].startswith("+1"):
                raise TwilioApiError(400, 21612, "Alphanumeric Sender IDs cannot send to +1")
            return from_
        owned = self._owner_of(number)
        if number != MAGIC_FROM and (owned is None or owned["account_sid"] != account.sid):
            raise TwilioApiError(
                400,
                21606,
                f"The From phone number {from_} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
        return from_

    @staticmethod
    def _schedule_time(req: _Request, service_sid: str | None) -> datetime | None:
        schedule_type, send_at = req.get("ScheduleType"), req.get("SendAt")
        if not schedule_type and not send_at:
            return None
        if schedule_type != "fixed" or not send_at:
            raise TwilioApiError(400, 35111, "SendAt and ScheduleType=fixed must be used together")
        if not service_sid:
            raise TwilioApiError(400, 35118, "MessagingServiceSid is required to schedule a message")
        moment, _ = _parse_date_filter("SendAt", send_at)
        if not timedelta(minutes=15) <= moment - _now() <= timedelta(days=35):
            raise TwilioApiError(400, 35114, "SendAt must be between 15 minutes and 35 days in the future")
        return moment

    def _message_lifecycle(self, sid: str) -> None:
        """Background status progression with signed status callbacks."""
        with self._lock:
            msg = self._messages.get(sid)
            if msg is None:
                return
            steps = list(
                ASYNC_MESSAGE_OUTCOMES.get(_split_channel(msg["to"])[1], [("sent", None), ("delivered", None)])
            )
            if msg["messaging_service_sid"]:
                steps.insert(0, ("queued", None))
        for status, error_code in steps:
            if self._stopping.wait(self.callback_delay):
                return
            with self._lock:
                msg = self._messages.get(sid)
                if msg is None:
                    return
                self._set_message_status(msg, status, error_code)
                url = msg["_status_callback"]
                params = self._message_callback_params(msg)
                token = self._accounts[msg["account_sid"]].auth_token
            if url:
                self._deliver_webhook("message-status", url, params, token)

    def _set_message_status(self, msg: dict[str, Any], status: str, error: int | None) -> None:
        now = _now()
        msg["status"] = status
        msg["date_updated"] = now
        msg["from"] = msg["_sender"]
        if status == "sent":
            msg["date_sent"] = now
            msg["price"] = f"-{0.0079 * int(msg['num_segments']):.5f}"
        if error is not None:
            msg["error_code"] = error
            msg["error_message"] = ERROR_MESSAGES.get(error)
            if error == 21610:
                self._opt_outs.add(
                    (
                        msg["account_sid"],
                        self._sender_key(msg["account_sid"], msg["_sender"], msg["messaging_service_sid"]),
                        _split_channel(msg["to"])[1],
                    )
                )

    @staticmethod
    def _message_callback_params(msg: dict[str, Any]) -> dict[str, str]:
        params = {
            "AccountSid": msg["account_sid"],
            "ApiVersion": API_VERSION,
            "From": msg["_sender"],
            "To": msg["to"],
            "MessageSid": msg["sid"],
            "SmsSid": msg["sid"],
            "MessageStatus": msg["status"],
            "SmsStatus": msg["status"],
        }
        if msg["messaging_service_sid"]:
            params["MessagingServiceSid"] = msg["messaging_service_sid"]
        if msg["error_code"] is not None:
            params["ErrorCode"] = str(msg["error_code"])
        if msg["status"] in {"delivered", "undelivered"}:
            params["RawDlrDoneDate"] = msg["date_updated"].strftime("%y%m%d%H%M")
        return params

    def _message_filter(self, req: _Request) -> Any:
        to, from_ = req.get("To"), req.get("From")
        bounds = []
        for name in ("DateSent", "DateSent>", "DateSent<"):
            value = req.get(name)
            if value:
                bounds.append((name, *_parse_date_filter(name, value)))

        def keep(msg: dict[str, Any]) -> bool:
            if (to and msg["to"] != to) or (from_ and msg["from"] != from_):
                return False
            sent = msg["date_sent"] or msg["date_created"]
            for name, moment, date_only in bounds:
                if name == "DateSent" and sent.date() != moment.date():
                    return False
                if name == "DateSent>" and sent < moment:
                    return False
                if name == "DateSent<" and (sent >= moment + timedelta(days=1) if date_only else sent > moment):
                    return False
            return True

        return keep

    def _h_list_messages(self, req: _Request) -> _Reply:
        account = self._scoped_account(req)
        keep = self._message_filter(req)
        items = [
            {**self._message_json(m), "_seq": m["_seq"]}
            for m in self._sorted(self._messages.values(), reverse=True)
            if m["account_sid"] == account.sid and keep(m)
        ]
        return self._v2010_page(req, "messages", items)

    def _h_fetch_message(self, req: _Request) -> tuple[int, Any]:
        return 200, self._message_json(self._message_for(req))

    def _h_update_message(self, req: _Request) -> tuple[int, Any]:
        msg = self._message_for(req)
        body, status = req.get("Body"), req.get("Status")
        if body is not None:
            if body != "":
                raise TwilioApiError(400, 20001, "Body can only be redacted (set to '')")
            msg["body"] = ""  # Twilio's redaction
        if status is not None:
            if status != "canceled" or msg["status"] != "scheduled":
                raise TwilioApiError(400, 20001, "Only scheduled messages can be canceled")
            msg["status"] = "canceled"
        msg["date_updated"] = _now()
        return 200, self._message_json(msg)

    def _h_delete_message(self, req: _Request) -> tuple[int, Any]:
        msg = self._message_for(req)
        if msg["status"] in IN_FLIGHT - {"scheduled"}:
            raise TwilioApiError(400, 20009, "Cannot delete message because delivery has not been completed")
        del self._messages[msg["sid"]]
        return 204, None

    # ----------------------------------------------------------------- calls

    def _call_json(self, call: dict[str, Any]) -> dict[str, Any]:
        data = _public(call)
        for key in ("date_created", "date_updated", "start_time", "end_time"):
            data[key] = _rfc2822(call[key])
        return data

    def _call_for(self, req: _Request) -> dict[str, Any]:
        account = self._scoped_account(req)
        call = self._calls.get(req.params["Sid"])
        if call is None or call["account_sid"] != account.sid:
            raise _not_found(req.path)
        return call

    def _h_create_call(self, req: _Request) -> tuple[int, Any]:
        account = self._scoped_account(req)
        self._require_active(account)
        to, from_ = (req.get("To") or "").strip(), (req.get("From") or "").strip()
        if not to:
            raise TwilioApiError(400, 21201, "No 'To' number is specified")
        if not from_:
            raise TwilioApiError(400, 21213, "No 'From' number is specified")
        if not E164_RE.fullmatch(to) and not to.startswith(("client:", "sip:")):
            raise TwilioApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        owned = self._owner_of(from_)
        if from_ != MAGIC_FROM and (owned is None or owned["account_sid"] != account.sid):
            raise TwilioApiError(
                400,
                21210,
                f"The source phone number provided, {from_}, is not yet verified for your account.",
            )
        if not (req.get("Url") or req.get("Twiml") or req.get("ApplicationSid")):
            raise TwilioApiError(400, 21205, "Url, Twiml or ApplicationSid is required")
        events = {e.strip() for ev in req.getlist("StatusCallbackEvent") for e in ev.split()}
        now = _now()
        sid = _sid("CA")
        call = {
            "sid": sid,
            "date_created": now,
            "date_updated": now,
            "parent_call_sid": None,
            "account_sid": account.sid,
            "to": to,
            "to_formatted": _format_phone(to),
            "from": from_,
            "from_formatted": _format_phone(from_),
            "phone_number_sid": owned["sid"] if owned else None,
            "status": "queued",
            "start_time": None,
            "end_time": None,
            "duration": None,
            "price": None,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": None,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": f"{API}/Accounts/{account.sid}/Calls/{sid}.json",
            "subresource_uris": {"recordings": f"{API}/Accounts/{account.sid}/Calls/{sid}/Recordings.json"},
            "_url": req.get("Url"),
            "_method": (req.get("Method") or "POST").upper(),
            "_status_callback": req.get("StatusCallback"),
            "_status_callback_method": (req.get("StatusCallbackMethod") or "POST").upper(),
            "_events": events or {"completed"},
            "_sequence": 0,
            "_seq": self._next_seq(),
        }
        self._calls[sid] = call
        logger.info("Call %s %s -> %s", sid, from_, _mask_phone(to))
        self._spawn(self._call_lifecycle, sid)
        return 201, self._call_json(call)

    def _call_lifecycle(self, sid: str) -> None:
        """initiated -> ringing -> in-progress (TwiML fetched) -> completed, or a magic outcome."""
        with self._lock:
            call = self._calls.get(sid)
            outcome = CALL_OUTCOMES.get(call["to"]) if call else None
        steps = [("initiated", "initiated"), ("ringing", "ringing")]
        steps += [("completed", outcome)] if outcome else [("answered", "in-progress"), ("completed", "completed")]
        for event, status in steps:
            if self._stopping.wait(self.callback_delay):
                return
            with self._lock:
                call = self._calls.get(sid)
                if call is None or call["status"] in {"completed", "canceled"}:
                    return
                self._set_call_status(call, status)
                params = self._call_callback_params(call)
                token = self._accounts[call["account_sid"]].auth_token
                callback = call["_status_callback"] if event in call["_events"] else None
                fetch_twiml = status == "in-progress" and call["_url"]
                method, callback_method = call["_method"], call["_status_callback_method"]
            if fetch_twiml:
                self._deliver_webhook("voice-url", call["_url"], params, token, method=method)
            if callback:
                self._deliver_webhook("call-status", callback, params, token, method=callback_method)

    def _set_call_status(self, call: dict[str, Any], status: str) -> None:
        now = _now()
        call["status"] = status
        call["date_updated"] = now
        call["_sequence"] += 1
        if status == "in-progress":
            call["start_time"] = now
        if status in {"completed", "busy", "no-answer", "failed", "canceled"}:
            call["end_time"] = now
            started = call["start_time"]
            call["duration"] = str(max(1, round((now - started).total_seconds())) if started else 0)
            if started:
                call["price"] = "-0.01400"

    @staticmethod
    def _call_callback_params(call: dict[str, Any]) -> dict[str, str]:
        params = {
            "AccountSid": call["account_sid"],
            "ApiVersion": API_VERSION,
            "CallSid": call["sid"],
            "CallStatus": call["status"],
            "Direction": call["direction"],
            "From": call["from"],
            "To": call["to"],
            "Called": call["to"],
            "Caller": call["from"],
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(call["_sequence"] - 1),
            "Timestamp": _rfc2822(call["date_updated"]),
        }
        if call["end_time"] is not None:
            params["CallDuration"] = call["duration"]
            params["Duration"] = str(math.ceil(int(call["duration"]) / 60))
        return params

    def _h_list_calls(self, req: _Request) -> _Reply:
        account = self._scoped_account(req)
        to, from_, status = req.get("To"), req.get("From"), req.get("Status")
        items = [
            {**self._call_json(c), "_seq": c["_seq"]}
            for c in self._sorted(self._calls.values(), reverse=True)
            if c["account_sid"] == account.sid
            and (not to or c["to"] == to)
            and (not from_ or c["from"] == from_)
            and (not status or c["status"] == status)
        ]
        return self._v2010_page(req, "calls", items)

    def _h_fetch_call(self, req: _Request) -> tuple[int, Any]:
        return 200, self._call_json(self._call_for(req))

    def _h_update_call(self, req: _Request) -> tuple[int, Any]:
        call = self._call_for(req)
        status = req.get("Status")
        if status not in {None, "canceled", "completed"}:
            raise TwilioApiError(400, 21220, f"Invalid Status: {status}")
        if status == "canceled" and call["status"] in {"queued", "ringing", "initiated"}:
            self._set_call_status(call, "canceled")
        elif status == "completed" and call["status"] == "in-progress":
            self._set_call_status(call, "completed")
        return 200, self._call_json(call)

    # ----------------------------------------------------------------- Verify v2

    def _verify_url(self, req: _Request, path: str) -> str:
        return f"http://{req.host}/v2/{path}"

    def _verify_service_for(self, req: _Request) -> dict[str, Any]:
        service = self._verify_services.get(req.params["ServiceSid"])
        if service is None or service["account_sid"] != req.principal.sid:
            raise _not_found(req.path)
        return service

    def _verify_service_json(self, service: dict[str, Any]) -> dict[str, Any]:
        data = _public(service)
        data["date_created"], data["date_updated"] = (
            _iso(service["date_created"]),
            _iso(service["date_updated"]),
        )
        return data

    def _h_list_verify_services(self, req: _Request) -> _Reply:
        items = [
            {**self._verify_service_json(s), "_seq": s["_seq"]}
            for s in self._sorted(self._verify_services.values())
            if s["account_sid"] == req.principal.sid
        ]
        return self._meta_page(req, "services", items)

    def _h_create_verify_service(self, req: _Request) -> tuple[int, Any]:
        name = req.get("FriendlyName")
        if not name:
            raise TwilioApiError(400, 60200, "Invalid parameter: FriendlyName")
        code_length = int(req.get("CodeLength") or 6)
        if not 4 <= code_length <= 10:
            raise TwilioApiError(400, 60200, "Invalid parameter: CodeLength")
        sid, now = _sid("VA"), _now()
        service = {
            "sid": sid,
            "account_sid": req.principal.sid,
            "friendly_name": name,
            "code_length": code_length,
            "lookup_enabled": False,
            "psd2_enabled": False,
            "skip_sms_to_landlines": False,
            "dtmf_input_required": True,
            "tts_name": None,
            "do_not_share_warning_enabled": False,
            "custom_code_enabled": False,
            "push": {},
            "totp": {},
            "default_template_sid": None,
            "whatsapp": {},
            "passkeys": {},
            "verify_event_subscription_enabled": False,
            "date_created": now,
            "date_updated": now,
            "url": self._verify_url(req, f"Services/{sid}"),
            "links": {
                "verification_checks": self._verify_url(req, f"Services/{sid}/VerificationCheck"),
                "verifications": self._verify_url(req, f"Services/{sid}/Verifications"),
            },
            "_seq": self._next_seq(),
        }
        self._verify_services[sid] = service
        return 201, self._verify_service_json(service)

    def _h_fetch_verify_service(self, req: _Request) -> tuple[int, Any]:
        return 200, self._verify_service_json(self._verify_service_for(req))

    def _h_update_verify_service(self, req: _Request) -> tuple[int, Any]:
        service = self._verify_service_for(req)
        if req.get("FriendlyName"):
            service["friendly_name"] = req.get("FriendlyName")
        service["date_updated"] = _now()
        return 200, self._verify_service_json(service)

    def _h_delete_verify_service(self, req: _Request) -> tuple[int, Any]:
        del self._verify_services[self._verify_service_for(req)["sid"]]
        return 204, None

    def _verification_json(self, ver: dict[str, Any], *, check: bool = False) -> dict[str, Any]:
        data = _public(ver)
        data["date_created"], data["date_updated"] = (
            _iso(ver["date_created"]),
            _iso(ver["date_updated"]),
        )
        if check:
            for key in ("lookup", "send_code_attempts", "sna", "url"):
                data.pop(key, None)
            data["sna_attempts_error_codes"] = []
        return data

    def _expire_verifications(self) -> None:
        now = _now()
        for ver in self._verifications.values():
            if ver["status"] == "pending" and now > ver["_expires"]:
                ver["status"] = "expired"

    def _pending_verification(self, service_sid: str, to: str) -> dict[str, Any] | None:
        self._expire_verifications()
        candidates = [
            v
            for v in self._verifications.values()
            if v["service_sid"] == service_sid and v["to"] == to and v["status"] == "pending"
        ]
        return max(candidates, key=lambda v: v["_seq"]) if candidates else None

    def _h_create_verification(self, req: _Request) -> tuple[int, Any]:
        service = self._verify_service_for(req)
        to, channel = (req.get("To") or "").strip(), req.get("Channel") or ""
        if channel not in {"sms", "call", "email", "whatsapp"}:
            raise TwilioApiError(400, 60200, "Invalid parameter: Channel")
        valid_to = "@" in to if channel == "email" else bool(E164_RE.fullmatch(to))
        if not valid_to:
            raise TwilioApiError(400, 60200, f"Invalid parameter `To`: {to}")
        now = _now()
        sends = self._verify_sends.setdefault((service["sid"], to), deque())
        while sends and now - sends[0] > VERIFY_TTL:
            sends.popleft()
        if len(sends) >= VERIFY_MAX_SENDS:
            raise TwilioApiError(429, 60203, "Max send attempts reached")
        sends.append(now)
        ver = self._pending_verification(service["sid"], to)
        if ver is None:
            sid = _sid("VE")
            code = "".join(secrets.choice(string.digits) for _ in range(service["code_length"]))
            ver = {
                "sid": sid,
                "service_sid": service["sid"],
                "account_sid": service["account_sid"],
                "to": to,
                "channel": channel,
                "status": "pending",
                "valid": False,
                "lookup": {"carrier": None},
                "amount": None,
                "payee": None,
                "send_code_attempts": [],
                "date_created": now,
                "date_updated": now,
                "sna": None,
                "url": self._verify_url(req, f"Services/{service['sid']}/Verifications/{sid}"),
                "_code": code,
                "_expires": now + VERIFY_TTL,
                "_checks": 0,
                "_seq": self._next_seq(),
            }
            self._verifications[sid] = ver
        ver["channel"] = channel
        ver["date_updated"] = now
        ver["send_code_attempts"].append({"attempt_sid": _sid("VL"), "channel": channel, "time": _iso(now)})
        self._verify_codes.append(
            {
                "to": to,
                "code": ver["_code"],
                "channel": channel,
                "service_sid": service["sid"],
                "verification_sid": ver["sid"],
                "date_created": _iso(now),
            }
        )
        logger.info(
            "Verify code %s for %s via %s (service %s)",
            ver["_code"],
            _mask_phone(to),
            channel,
            service["sid"],
        )
        return 201, self._verification_json(ver)

    def _h_fetch_verification(self, req: _Request) -> tuple[int, Any]:
        service = self._verify_service_for(req)
        self._expire_verifications()
        ver = self._verifications.get(req.params["Sid"])
        if ver is None or ver["service_sid"] != service["sid"]:
            raise _not_found(req.path)
        return 200, self._verification_json(ver)

    def _h_update_verification(self, req: _Request) -> tuple[int, Any]:
        service = self._verify_service_for(req)
        ver = self._verifications.get(req.params["Sid"])
        if ver is None or ver["service_sid"] != service["sid"] or ver["status"] != "pending":
            raise _not_found(req.path)
        status = req.get("Status")
        if status not in {"canceled", "approved"}:
            raise TwilioApiError(400, 60200, "Invalid parameter: Status")
        ver["status"], ver["valid"], ver["date_updated"] = status, status == "approved", _now()
        return 200, self._verification_json(ver)

    def _h_check_verification(self, req: _Request) -> tuple[int, Any]:
        service = self._verify_service_for(req)
        code = req.get("Code")
        if not code:
            raise TwilioApiError(400, 60200, "Invalid parameter: Code")
        ver_sid, to = req.get("VerificationSid"), (req.get("To") or "").strip()
        if ver_sid:
            self._expire_verifications()
            ver = self._verifications.get(ver_sid)
            if ver is not None and (ver["service_sid"] != service["sid"] or ver["status"] != "pending"):
                ver = None
        elif to:
            ver = self._pending_verification(service["sid"], to)
        else:
            raise TwilioApiError(400, 60200, "Either a 'To' or a 'VerificationSid' is required")
        if ver is None:
            raise _not_found(req.path)
        if ver["_checks"] >= VERIFY_MAX_CHECKS:
            ver["status"] = "max_attempts_reached"
            raise TwilioApiError(429, 60202, "Max check attempts reached")
        ver["_checks"] += 1
        ver["date_updated"] = _now()
        if hmac.compare_digest(code, ver["_code"]):
            ver["status"], ver["valid"] = "approved", True
        return 200, self._verification_json(ver, check=True)

    # ----------------------------------------------------------------- Messaging v1

    def _messaging_url(self, req: _Request, path: str) -> str:
        return f"http://{req.host}/v1/{path}"

    def _service_of_number(self, number_sid: str) -> dict[str, Any] | None:
        return next((s for s in self._messaging_services.values() if number_sid in s["_numbers"]), None)

    def _messaging_service_for(self, req: _Request) -> dict[str, Any]:
        service = self._messaging_services.get(req.params["ServiceSid"])
        if service is None or service["account_sid"] != req.principal.sid:
            raise _not_found(req.path)
        return service

    def _messaging_service_json(self, service: dict[str, Any]) -> dict[str, Any]:
        data = _public(service)
        data["date_created"], data["date_updated"] = (
            _iso(service["date_created"]),
            _iso(service["date_updated"]),
        )
        return data

    MESSAGING_SERVICE_PARAMS = {
        "FriendlyName": "friendly_name",
        "InboundRequestUrl": "inbound_request_url",
        "InboundMethod": "inbound_method",
        "FallbackUrl": "fallback_url",
        "FallbackMethod": "fallback_method",
        "StatusCallback": "status_callback",
        "Usecase": "usecase",
    }

    def _apply_messaging_fields(self, service: dict[str, Any], req: _Request) -> None:
        for param, attr in self.MESSAGING_SERVICE_PARAMS.items():
            if req.get(param) is not None:
                service[attr] = req.get(param)
        for param, attr in (
            ("UseInboundWebhookOnNumber", "use_inbound_webhook_on_number"),
            ("StickySender", "sticky_sender"),
            ("SmartEncoding", "smart_encoding"),
        ):
            if req.get(param) is not None:
                service[attr] = _truthy(req.get(param))
        if req.get("ValidityPeriod"):
            service["validity_period"] = int(req.get("ValidityPeriod"))
        service["date_updated"] = _now()

    def _h_list_messaging_services(self, req: _Request) -> _Reply:
        items = [
            {**self._messaging_service_json(s), "_seq": s["_seq"]}
            for s in self._sorted(self._messaging_services.values())
            if s["account_sid"] == req.principal.sid
        ]
        return self._meta_page(req, "services", items)

    def _h_create_messaging_service(self, req: _Request) -> tuple[int, Any]:
        if not req.get("FriendlyName"):
            raise TwilioApiError(400, 21100, "FriendlyName is required")
        sid, now = _sid("MG"), _now()
        url = self._messaging_url(req, f"Services/{sid}")
        service = {
            "sid": sid,
            "account_sid": req.principal.sid,
            "friendly_name": "",
            "date_created": now,
            "date_updated": now,
            "inbound_request_url": None,
            "inbound_method": "POST",
            "fallback_url": None,
            "fallback_method": "POST",
            "status_callback": None,
            "sticky_sender": True,
            "mms_converter": True,
            "smart_encoding": True,
            "scan_message_content": "inherit",
            "fallback_to_long_code": True,
            "area_code_geomatch": True,
            "synchronous_validation": False,
            "validity_period": 14400,
            "url": url,
            "links": {
                "phone_numbers": f"{url}/PhoneNumbers",
                "short_codes": f"{url}/ShortCodes",
                "alpha_senders": f"{url}/AlphaSenders",
            },
            "usecase": "undeclared",
            "us_app_to_person_registered": False,
            "use_inbound_webhook_on_number": False,
            "_numbers": [],
            "_seq": self._next_seq(),
        }
        self._apply_messaging_fields(service, req)
        self._messaging_services[sid] = service
        return 201, self._messaging_service_json(service)

    def _h_fetch_messaging_service(self, req: _Request) -> tuple[int, Any]:
        return 200, self._messaging_service_json(self._messaging_service_for(req))

    def _h_update_messaging_service(self, req: _Request) -> tuple[int, Any]:
        service = self._messaging_service_for(req)
        self._apply_messaging_fields(service, req)
        return 200, self._messaging_service_json(service)

    def _h_delete_messaging_service(self, req: _Request) -> tuple[int, Any]:
        del self._messaging_services[self._messaging_service_for(req)["sid"]]
        return 204, None

    def _service_number_json(self, req: _Request, service: dict[str, Any], number: dict[str, Any]):
        return {
            "sid": number["sid"],
            "account_sid": number["account_sid"],
            "service_sid": service["sid"],
            "date_created": _iso(service["date_updated"]),
            "date_updated": _iso(service["date_updated"]),
            "phone_number": number["phone_number"],
            "country_code": "US",
            "capabilities": ["SMS", "MMS", "Voice"],
            "url": self._messaging_url(req, f"Services/{service['sid']}/PhoneNumbers/{number['sid']}"),
        }

    def _h_list_service_numbers(self, req: _Request) -> _Reply:
        service = self._messaging_service_for(req)
        items = [
            {**self._service_number_json(req, service, self._numbers[sid]), "_seq": i}
            for i, sid in enumerate(service["_numbers"])
        ]
        return self._meta_page(req, "phone_numbers", items)

    def _h_add_service_number(self, req: _Request) -> tuple[int, Any]:
        service = self._messaging_service_for(req)
        number = self._numbers.get(req.get("PhoneNumberSid") or "")
        if number is None or number["account_sid"] != service["account_sid"]:
            raise TwilioApiError(400, 21100, "PhoneNumberSid is not a number of this account")
        owner = self._service_of_number(number["sid"])
        if owner is not None:
            raise TwilioApiError(409, 21710, f"Phone Number is already in the Messaging Service {owner['sid']}")
        service["_numbers"].append(number["sid"])
        return 201, self._service_number_json(req, service, number)

    def _service_number_for(self, req: _Request) -> tuple[dict[str, Any], dict[str, Any]]:
        service = self._messaging_service_for(req)
        if req.params["Sid"] not in service["_numbers"]:
            raise _not_found(req.path)
        return service, self._numbers[req.params["Sid"]]

    def _h_fetch_service_number(self, req: _Request) -> tuple[int, Any]:
        service, number = self._service_number_for(req)
        return 200, self._service_number_json(req, service, number)

    def _h_remove_service_number(self, req: _Request) -> tuple[int, Any]:
        service, number = self._service_number_for(req)
        service["_numbers"].remove(number["sid"])
        return 204, None

    # ----------------------------------------------------------------- Accounts v1

    def _h_create_secondary_token(self, req: _Request) -> tuple[int, Any]:
        account = req.principal
        self._require_auth_token(req, "auth tokens")
        account.secondary_auth_token = secrets.token_hex(16)
        account.secondary_created = _now()
        logger.info("Secondary auth token created for %s", account.sid)
        return 201, {
            "account_sid": account.sid,
            "date_created": _iso(account.secondary_created),
            "date_updated": _iso(account.secondary_created),
            "secondary_auth_token": account.secondary_auth_token,
            "url": f"http://{req.host}/v1/AuthTokens/Secondary",
        }

    def _h_delete_secondary_token(self, req: _Request) -> tuple[int, Any]:
        self._require_auth_token(req, "auth tokens")
        req.principal.secondary_auth_token = None
        return 204, None

    def _h_promote_secondary_token(self, req: _Request) -> tuple[int, Any]:
        account = req.principal
        self._require_auth_token(req, "auth tokens")
        if account.secondary_auth_token is None:
            raise TwilioApiError(400, 20001, "No secondary auth token to promote")
        account.auth_token, account.secondary_auth_token = account.secondary_auth_token, None
        account.date_updated = _now()
        if account.sid == self.parent_account_sid:
            self._parent_token = account.auth_token
        logger.info("Secondary auth token promoted for %s", account.sid)
        return 200, {
            "account_sid": account.sid,
            "auth_token": account.auth_token,
            "date_created": _iso(account.date_created),
            "date_updated": _iso(account.date_updated),
            "url": f"http://{req.host}/v1/AuthTokens/Promote",
        }

    # ----------------------------------------------------------------- webhooks out

    def _spawn(self, target: Any, *args: Any) -> None:
        threading.Thread(target=target, args=args, daemon=True, name="sandbox-callbacks").start()

    def _deliver_webhook(
        self, kind: str, url: str, params: dict[str, str], token: str, *, method: str = "POST"
    ) -> requests.Response | None:
        """Send a webhook signed like Twilio; retry once on connect/timeout; never raise."""
        if method == "GET":
            url = url + ("&" if "?" in url else "?") + urlencode(params)
            signed_params: dict[str, str] = {}
        else:
            signed_params = params
        headers = {
            "X-Twilio-Signature": RequestValidator(token).compute_signature(url, signed_params),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": "TwilioProxy/1.1",
        }
        record: dict[str, Any] = {"kind": kind, "url": url, "method": method, "params": params}
        response, error = None, None
        for _attempt in range(2):
            try:
                if method == "GET":
                    response = requests.get(url, headers=headers, timeout=WEBHOOK_TIMEOUT)
                else:
                    response = requests.post(url, data=params, headers=headers, timeout=WEBHOOK_TIMEOUT)
                break
            except (requests.ConnectionError, requests.Timeout) as exc:
                error = str(exc)
            except requests.RequestException as exc:
                error = str(exc)
                break
        record.update(
            status_code=response.status_code if response is not None else None,
            error=None if response is not None else error,
            date=_iso(_now()),
        )
        with self._lock:
            self._webhooks.append(record)
        if response is None:
            logger.warning("Webhook %s to %s failed: %s", kind, url, error)
        elif response.status_code >= 400:
            logger.warning("Webhook %s to %s answered %s", kind, url, response.status_code)
        return response

    # ----------------------------------------------------------------- control endpoints

    def _h_ctl_index(self, req: _Request) -> tuple[int, Any]:
        paths = sorted({f"{r.method} {r.template}" for r in ROUTES if r.control})
        return 200, {
            "status": "ok",
            "parent_account_sid": self.parent_account_sid,
            "control_endpoints": paths,
        }

    def _h_ctl_accounts(self, req: _Request) -> tuple[int, Any]:
        return 200, [
            {
                "sid": a.sid,
                "friendly_name": a.friendly_name,
                "owner_account_sid": a.owner_account_sid,
                "status": a.status,
                "twilio_suspended": a.twilio_suspended,
                "auth_token": mask_secret(a.auth_token),
                "numbers": [n["phone_number"] for n in self._numbers.values() if n["account_sid"] == a.sid],
            }
            for a in self._accounts.values()
        ]

    def _ctl_account(self, sid: str, token: str | None = None) -> Account:
        if not ACCOUNT_SID_RE.fullmatch(sid):
            raise TwilioApiError(400, 20001, f"{sid} is not an Account SID")
        return self.register_account(sid, token)

    def _h_ctl_account(self, req: _Request) -> tuple[int, Any]:
        account = self._ctl_account(req.params["AccountSid"], req.get("AuthToken"))
        if req.get("AuthToken") and account.sid != self.parent_account_sid:
            account.auth_token = req.get("AuthToken")
        if req.get("FriendlyName"):
            account.friendly_name = req.get("FriendlyName")
        if req.get("twilio_suspended") is not None:
            account.twilio_suspended = _truthy(req.get("twilio_suspended"))
            account.status = "suspended" if account.twilio_suspended else "active"
        return 200, {
            "sid": account.sid,
            "status": account.status,
            "twilio_suspended": account.twilio_suspended,
        }

    def _h_ctl_seed_number(self, req: _Request) -> tuple[int, Any]:
        account = self._ctl_account(req.params["AccountSid"], req.get("AuthToken"))
        number = req.get("PhoneNumber")
        if number is None:
            area_code = req.get("AreaCode") or "415"
            found = self._generate_numbers(area_code, "Local", 1)
            if not found:
                raise TwilioApiError(400, 21452, f"No numbers in area code {area_code}")
            number = found[0]
        elif not E164_RE.fullmatch(number):
            raise TwilioApiError(400, 21421, f"PhoneNumber {number} is invalid")
        fields = {k: req.get(k) for k in self.NUMBER_PARAMS}
        return 201, _public(self._provision_number(account, number, fields))

    def _h_ctl_list_faults(self, req: _Request) -> tuple[int, Any]:
        return 200, [vars(f) for f in self._faults]

    def _h_ctl_add_fault(self, req: _Request) -> tuple[int, Any]:
        try:
            fault = Fault(
                path_contains=req.get("path_contains") or "",
                status=int(req.get("status") or 500),
                code=int(req.get("code") or req.get("status") or 20500),
                count=int(req.get("count") or 1),
                mode=req.get("mode") or "error",
                method=(req.get("method") or "").upper() or None,
                message=req.get("message"),
            )
        except ValueError:
            raise TwilioApiError(400, 20001, "status, code and count must be integers") from None
        if fault.mode not in {"error", "accept_then_drop"}:
            raise TwilioApiError(400, 20001, "mode must be 'error' or 'accept_then_drop'")
        self._faults.append(fault)
        return 201, vars(fault)

    def _h_ctl_clear_faults(self, req: _Request) -> tuple[int, Any]:
        self._faults.clear()
        return 204, None

    def _h_ctl_messages(self, req: _Request) -> tuple[int, Any]:
        to, account_sid = req.get("to"), req.get("account_sid")
        return 200, [
            {
                **self._message_json(m),
                "status_callback": m["_status_callback"],
                "media_urls": m["_media"],
            }
            for m in self._sorted(self._messages.values(), reverse=True)
            if (not to or m["to"] == to) and (not account_sid or m["account_sid"] == account_sid)
        ]

    def _h_ctl_calls(self, req: _Request) -> tuple[int, Any]:
        return 200, [self._call_json(c) for c in self._sorted(self._calls.values(), reverse=True)]

    def _h_ctl_webhooks(self, req: _Request) -> tuple[int, Any]:
        return 200, [dict(w) for w in self._webhooks]

    def _h_ctl_verify_codes(self, req: _Request) -> tuple[int, Any]:
        to = (req.get("to") or "").strip()
        if to and to[0].isdigit():  # a raw '+' in a query string arrives as a space
            to = "+" + to
        return 200, self.verify_codes(to or None)

    def _h_ctl_inbound(self, req: _Request) -> tuple[int, Any]:
        """Deliver a signed inbound SMS webhook synchronously (runs without the lock held
        while the portal answers, so the portal may call the sandbox meanwhile)."""
        with self._lock:
            url, params, token = self._prepare_inbound(req)
        response = self._deliver_webhook("inbound-sms", url, params, token)
        return 200, {
            "status_code": response.status_code if response is not None else None,
            "body": response.text if response is not None else None,
            "url": url,
            "message_sid": params["MessageSid"],
        }

    def _prepare_inbound(self, req: _Request) -> tuple[str, dict[str, str], str]:
        to, from_ = (req.get("To") or "").strip(), (req.get("From") or "").strip()
        body = req.get("Body") or ""
        if not to or not from_:
            raise TwilioApiError(400, 20001, "To and From are required")
        number = self._owner_of(_split_channel(to)[1])
        account_sid = req.get("AccountSid") or (number["account_sid"] if number else None)
        account = self._accounts.get(account_sid or "")
        if account is None:
            raise TwilioApiError(404, 20404, f"No account owns {to}; pass AccountSid")
        service = self._service_of_number(number["sid"]) if number else None
        url = req.get("Url")
        if not url and service and not service["use_inbound_webhook_on_number"]:
            url = service["inbound_request_url"]
        if not url and number:
            url = number["sms_url"]
        if not url:
            raise TwilioApiError(400, 20001, f"No Url given and {to} has no SmsUrl")
        sid = _sid("SM")
        params = {
            "ToCountry": "US",
            "ToState": "CA",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "SAN FRANCISCO",
            "FromZip": "94103",
            "SmsSid": sid,
            "FromState": "CA",
            "SmsStatus": "received",
            "FromCity": "SAN FRANCISCO",
            "Body": body,
            "FromCountry": "US",
            "To": to,
            "ToZip": "94103",
            "NumSegments": str(_num_segments(body)),
            "MessageSid": sid,
            "AccountSid": account.sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        if service:
            params["MessagingServiceSid"] = service["sid"]
        self._record_inbound(account, params, service)
        return url, params, account.auth_token

    def _record_inbound(self, account: Account, params: dict[str, str], service: dict[str, Any] | None) -> None:
        """Store the inbound message and apply Twilio's own opt-out keywords."""
        now = _now()
        self._messages[params["MessageSid"]] = {
            "account_sid": account.sid,
            "api_version": API_VERSION,
            "body": params["Body"],
            "date_created": now,
            "date_sent": now,
            "date_updated": now,
            "direction": "inbound",
            "error_code": None,
            "error_message": None,
            "from": params["From"],
            "messaging_service_sid": service["sid"] if service else None,
            "num_media": "0",
            "num_segments": params["NumSegments"],
            "price": None,
            "price_unit": "USD",
            "sid": params["MessageSid"],
            "status": "received",
            "subresource_uris": {},
            "to": params["To"],
            "uri": f"{API}/Accounts/{account.sid}/Messages/{params['MessageSid']}.json",
            "_sender": params["From"],
            "_media": [],
            "_status_callback": None,
            "_send_at": None,
            "_seq": self._next_seq(),
        }
        keyword = params["Body"].strip().upper()
        sender_key = service["sid"] if service else _split_channel(params["To"])[1]
        key = (account.sid, sender_key, _split_channel(params["From"])[1])
        if keyword in OPT_OUT_KEYWORDS:
            self._opt_outs.add(key)
            opt_type = "STOP"
        elif keyword in OPT_IN_KEYWORDS:
            self._opt_outs.discard(key)
            opt_type = "START"
        elif keyword in HELP_KEYWORDS:
            opt_type = "HELP"
        else:
            return
        if service:  # Advanced Opt-Out lives on Messaging Services
            params["OptOutType"] = opt_type

    def _h_ctl_reset(self, req: _Request) -> tuple[int, Any]:
        self._reset_state()
        return 204, None
