"""Voice: Calls (place, with Twilio's magic outcome numbers; the progression initiated ->
ringing -> in-progress -> completed, fetching the call's TwiML URL signed and sending the
status callbacks its `StatusCallbackEvent` asks for; list, fetch, cancel, hang up)."""

from __future__ import annotations

import math
from typing import Any

from .accounts import AccountsApi
from .callbacks import CallbacksApi
from .errors import TwilioApiError, not_found
from .http import Reply, SandboxRequest
from .paging import v2010_page
from .state import (
    API,
    API_VERSION,
    E164_RE,
    MAGIC_FROM,
    format_phone,
    logger,
    mask_phone,
    new_sid,
    public,
    rfc2822,
    utc_now,
)

# To -> the call's final status instead of answered and completed.
CALL_OUTCOMES = {"+15005550020": "busy", "+15005550021": "no-answer", "+15005550022": "failed"}


class VoiceApi(AccountsApi, CallbacksApi):
    """The calls of each account."""

    def _call_json(self, call: dict[str, Any]) -> dict[str, Any]:
        data = public(call)
        for key in ("date_created", "date_updated", "start_time", "end_time"):
            data[key] = rfc2822(call[key])
        return data

    def _call_for(self, req: SandboxRequest) -> dict[str, Any]:
        account = self._scoped_account(req)
        call = self._calls.get(req.params["Sid"])
        if call is None or call["account_sid"] != account.sid:
            raise not_found(req.path)
        return call

    def _h_create_call(self, req: SandboxRequest) -> tuple[int, Any]:
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
        now = utc_now()
        sid = new_sid("CA")
        call = {
            "sid": sid,
            "date_created": now,
            "date_updated": now,
            "parent_call_sid": None,
            "account_sid": account.sid,
            "to": to,
            "to_formatted": format_phone(to),
            "from": from_,
            "from_formatted": format_phone(from_),
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
        logger.info("Call %s %s -> %s", sid, from_, mask_phone(to))
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
        now = utc_now()
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
            "Timestamp": rfc2822(call["date_updated"]),
        }
        if call["end_time"] is not None:
            params["CallDuration"] = call["duration"]
            params["Duration"] = str(math.ceil(int(call["duration"]) / 60))
        return params

    def _h_list_calls(self, req: SandboxRequest) -> Reply:
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
        return v2010_page(req, "calls", items)

    def _h_fetch_call(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, self._call_json(self._call_for(req))

    def _h_update_call(self, req: SandboxRequest) -> tuple[int, Any]:
        call = self._call_for(req)
        status = req.get("Status")
        if status not in {None, "canceled", "completed"}:
            raise TwilioApiError(400, 21220, f"Invalid Status: {status}")
        if status == "canceled" and call["status"] in {"queued", "ringing", "initiated"}:
            self._set_call_status(call, "canceled")
        elif status == "completed" and call["status"] == "in-progress":
            self._set_call_status(call, "completed")
        return 200, self._call_json(call)
