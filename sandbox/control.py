"""The sandbox's own control endpoints (not Twilio's API; no authentication): inspect what
it holds, register accounts and seed numbers, inject faults, reset, and play an inbound SMS
(signed as Twilio signs it, applying Twilio's own STOP/START keywords). The list is in the
package docstring."""

from __future__ import annotations

import time
from typing import Any

from .errors import TwilioApiError
from .http import ROUTES, SandboxRequest
from .messaging import MessagingApi
from .numbers import NUMBER_PARAMS, NumbersApi
from .sendgrid import SendGridApi
from .state import (
    ACCOUNT_SID_RE,
    API,
    API_VERSION,
    E164_RE,
    FAULT_MODES,
    Account,
    Fault,
    mask_secret,
    new_sid,
    num_segments,
    public,
    split_channel,
    truthy,
    utc_now,
)
from .verify import VerifyApi
from .voice import VoiceApi

# Twilio's default opt-out handling of inbound messages.
OPT_OUT_KEYWORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN_KEYWORDS = {"START", "YES", "UNSTOP"}
HELP_KEYWORDS = {"HELP", "INFO"}


#: `kind` shorthands of POST /sandbox/faults: (status, code, mode).
FAULT_KINDS = {
    "500": (500, 20500, "error"),
    "503": (503, 20503, "error"),
    "429": (429, 20429, "error"),
    "timeout": (0, 0, "stall"),
}


def fault_from_request(req: SandboxRequest) -> Fault:
    """Parse a fault; raises ValueError saying what is wrong."""
    kind = (req.get("kind") or "").strip().lower()
    if kind and kind not in FAULT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    status, code, mode = FAULT_KINDS.get(kind, (500, 20500, "error"))
    if kind == "timeout" and truthy(req.get("accept")):
        mode = "accept_then_stall"  # Twilio acted, then went quiet: "maybe sent"
    try:
        status = int(req.get("status") or status)
        code = int(req.get("code") or req.get("status") or code)
        seconds = float(req.get("seconds") or 0) if req.get("seconds") else None
        count = int(req.get("count") or 0) or (None if seconds else 1)
        stall = float(req.get("stall_seconds") or 30)
    except ValueError:
        raise ValueError("status, code and count must be integers; seconds and stall_seconds numbers") from None
    mode = req.get("mode") or mode
    if mode not in FAULT_MODES:
        raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
    if seconds is not None and not 0 < seconds <= 3600 or not 0 < stall <= 600:
        raise ValueError("seconds must be in (0, 3600] and stall_seconds in (0, 600]")
    return Fault(
        path_contains=req.get("path_contains") or "",
        status=status,
        code=code,
        count=count,
        mode=mode,
        method=(req.get("method") or "").upper() or None,
        message=req.get("message"),
        to=(req.get("to") or "").strip() or None,
        stall_seconds=stall,
        expires_at=time.monotonic() + seconds if seconds else None,
    )


class ControlApi(MessagingApi, VoiceApi, VerifyApi, NumbersApi, SendGridApi):
    """Control endpoints over every product's state."""

    def _h_ctl_index(self, req: SandboxRequest) -> tuple[int, Any]:
        paths = sorted({f"{r.method} {r.template}" for r in ROUTES if r.control})
        return 200, {
            "status": "ok",
            "parent_account_sid": self.parent_account_sid,
            "control_endpoints": paths,
        }

    def _h_ctl_accounts(self, req: SandboxRequest) -> tuple[int, Any]:
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

    def _h_ctl_account(self, req: SandboxRequest) -> tuple[int, Any]:
        account = self._ctl_account(req.params["AccountSid"], req.get("AuthToken"))
        if req.get("AuthToken") and account.sid != self.parent_account_sid:
            account.auth_token = req.get("AuthToken")
        if req.get("FriendlyName"):
            account.friendly_name = req.get("FriendlyName")
        if req.get("twilio_suspended") is not None:
            account.twilio_suspended = truthy(req.get("twilio_suspended"))
            account.status = "suspended" if account.twilio_suspended else "active"
        return 200, {
            "sid": account.sid,
            "status": account.status,
            "twilio_suspended": account.twilio_suspended,
        }

    def _h_ctl_seed_number(self, req: SandboxRequest) -> tuple[int, Any]:
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
        fields = {k: req.get(k) for k in NUMBER_PARAMS}
        return 201, public(self._provision_number(account, number, fields))

    def _h_ctl_list_faults(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, [vars(f) for f in self._faults]

    def _h_ctl_add_fault(self, req: SandboxRequest) -> tuple[int, Any]:
        """One fault, from a `kind` (500, 429 or timeout: see the package docstring) or from
        the raw fields (`status`, `code`, `mode`)."""
        try:
            fault = fault_from_request(req)
        except ValueError as exc:
            raise TwilioApiError(400, 20001, str(exc)) from None
        self._faults.append(fault)
        return 201, vars(fault)

    def _h_ctl_clear_faults(self, req: SandboxRequest) -> tuple[int, Any]:
        self._faults.clear()
        return 204, None

    def _h_ctl_faults_injected(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, list(self._faults_injected)

    def _h_ctl_messages(self, req: SandboxRequest) -> tuple[int, Any]:
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

    def _h_ctl_calls(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, [self._call_json(c) for c in self._sorted(self._calls.values(), reverse=True)]

    def _h_ctl_webhooks(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, [dict(w) for w in self._webhooks]

    def _h_ctl_verify_codes(self, req: SandboxRequest) -> tuple[int, Any]:
        to = (req.get("to") or "").strip()
        if to and to[0].isdigit():  # a raw '+' in a query string arrives as a space
            to = "+" + to
        return 200, self.verify_codes(to or None)

    def _h_ctl_inbound(self, req: SandboxRequest) -> tuple[int, Any]:
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

    def _prepare_inbound(self, req: SandboxRequest) -> tuple[str, dict[str, str], str]:
        to, from_ = (req.get("To") or "").strip(), (req.get("From") or "").strip()
        body = req.get("Body") or ""
        if not to or not from_:
            raise TwilioApiError(400, 20001, "To and From are required")
        number = self._owner_of(split_channel(to)[1])
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
        sid = new_sid("SM")
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
            "NumSegments": str(num_segments(body)),
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
        now = utc_now()
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
        sender_key = service["sid"] if service else split_channel(params["To"])[1]
        key = (account.sid, sender_key, split_channel(params["From"])[1])
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

    def _h_ctl_reset(self, req: SandboxRequest) -> tuple[int, Any]:
        self._reset_state()
        return 204, None
