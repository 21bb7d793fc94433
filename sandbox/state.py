"""What every product module of the sandbox shares: the in-memory state (one lock), the
account and fault records, Twilio's formats (dates, SIDs, phone numbers) and the development
parent credentials."""

from __future__ import annotations

import hmac
import logging
import math
import re
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import phonenumbers

logger = logging.getLogger("commsportal.sandbox")

API = "/2010-04-01"
API_VERSION = "2010-04-01"
ACCOUNT_SID_RE = re.compile(r"AC[0-9a-f]{32}")
E164_RE = re.compile(r"\+[1-9]\d{6,14}")
AREA_CODE_RE = re.compile(r"[2-9]\d\d")

DEV_PARENT_ACCOUNT_SID = "AC" + "5a" * 16
DEV_PARENT_AUTH_TOKEN = "0123456789abcdef" * 2

MAGIC_FROM = "+15005550006"
TOLL_FREE_PREFIXES = ("833", "844", "855", "866", "877", "888")
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc2822(value: datetime | None) -> str | None:
    """v2010 resources use RFC 2822 dates, e.g. 'Thu, 24 Aug 2023 05:01:45 +0000'."""
    return None if value is None else format_datetime(value.replace(microsecond=0))


def iso(value: datetime | None) -> str | None:
    """v1/v2 domains use ISO 8601 dates."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def mask_secret(value: str) -> str:
    """Show only the last 4 characters of a token or secret."""
    return "*" * 4 + value[-4:] if value else ""


def mask_phone(value: str) -> str:
    return "*" * max(len(value) - 4, 0) + value[-4:]


def truthy(value: str | None) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def format_phone(number: str) -> str:
    """Twilio's friendly_name for a NANP number: '(415) 555-0123'."""
    if number.startswith("+1") and len(number) == 12:
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


def split_channel(address: str) -> tuple[str, str]:
    """'whatsapp:+1415…' -> ('whatsapp:', '+1415…'); plain numbers have no prefix."""
    prefix, sep, rest = address.partition(":")
    if sep and prefix.lower() in {"whatsapp", "messenger", "rcs"}:
        return prefix.lower() + ":", rest
    return "", address


def num_segments(body: str) -> int:
    if not body:
        return 1
    if all(ch in GSM7 for ch in body):
        return 1 if len(body) <= 160 else math.ceil(len(body) / 153)
    return 1 if len(body) <= 70 else math.ceil(len(body) / 67)


def is_valid_number(number: str) -> bool:
    """E.164, and valid per phonenumbers (Twilio refuses numbers that can't exist)."""
    if not E164_RE.fullmatch(number):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return False


def public(record: dict[str, Any]) -> dict[str, Any]:
    """Drop the sandbox's private bookkeeping keys (leading underscore) from a record."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


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
    date_created: datetime = field(default_factory=utc_now)
    date_updated: datetime = field(default_factory=utc_now)

    def token_matches(self, token: str) -> bool:
        candidates = [self.auth_token, self.secondary_auth_token]
        return any(c is not None and hmac.compare_digest(c.encode(), token.encode()) for c in candidates)


#: Fault modes: answer an error; act, then close without answering; or hold the connection
#: open without answering (the client's read timeout fires), before or after acting.
FAULT_MODES = ("error", "accept_then_drop", "stall", "accept_then_stall")


@dataclass
class Fault:
    """A failure the next matching API request(s) meet: `count` of them (None: any number),
    until `expires_at` (a `time.monotonic()` instant) when set; `to` narrows it to one
    recipient (the request's `To`). `stall_seconds` is how long a stall holds the connection
    before closing it unanswered."""

    path_contains: str
    status: int = 500
    code: int = 20500
    count: int | None = 1
    mode: str = "error"
    method: str | None = None
    message: str | None = None
    to: str | None = None
    stall_seconds: float = 30.0
    expires_at: float | None = None

    def matches(self, method: str, path: str, to: str | None = None) -> bool:
        return (
            self.path_contains in path
            and (self.method is None or self.method == method)
            and (self.to is None or self.to == to)
        )

    def live(self, now: float) -> bool:
        """Not used up and not expired."""
        return (self.count is None or self.count > 0) and (self.expires_at is None or now < self.expires_at)


class SandboxState:
    """The sandbox's records, guarded by one re-entrant lock, and the lookups several
    products share (a number's owner, its Messaging Service, ordering by creation)."""

    def __init__(
        self,
        *,
        parent_account_sid: str,
        parent_auth_token: str,
        callback_delay: float,
        auto_register_accounts: bool,
    ) -> None:
        self.parent_account_sid = parent_account_sid
        self.callback_delay = callback_delay
        self.auto_register_accounts = auto_register_accounts
        self._parent_token = parent_auth_token
        self._lock = threading.RLock()
        # Set when the server stops: status progressions end instead of calling back.
        self._stopping = threading.Event()
        self._reset_state()

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
            # Every fault served (when, which, on what): how a drill sees the portal's backoff.
            self._faults_injected: deque[dict[str, Any]] = deque(maxlen=10000)
            self._webhooks: deque[dict[str, Any]] = deque(maxlen=1000)
            self._accounts[self.parent_account_sid] = Account(
                sid=self.parent_account_sid,
                auth_token=self._parent_token,
                friendly_name="Sandbox parent account",
                owner_account_sid=self.parent_account_sid,
            )

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

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @staticmethod
    def _sorted(records: Any, reverse: bool = False) -> list[dict[str, Any]]:
        return sorted(records, key=lambda r: r["_seq"], reverse=reverse)

    def _owner_of(self, phone_number: str) -> dict[str, Any] | None:
        return next((n for n in self._numbers.values() if n["phone_number"] == phone_number), None)

    def _service_of_number(self, number_sid: str) -> dict[str, Any] | None:
        return next((s for s in self._messaging_services.values() if number_sid in s["_numbers"]), None)

    def _release_number(self, sid: str) -> None:
        """Twilio's release: the number leaves its account and any Messaging Service pool."""
        number = self._numbers.pop(sid)
        for service in self._messaging_services.values():
            if sid in service["_numbers"]:
                service["_numbers"].remove(sid)
        logger.info("Number %s released", number["phone_number"])
