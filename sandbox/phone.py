"""The virtual phone: calls the sandbox places or receives, run through their TwiML
(`sandbox.twiml`) with a person or a test at the other end.

A call to one of a tenant's numbers (`POST /sandbox/calls/incoming`) fetches the number's
VoiceUrl exactly as Twilio does (signed with the owning account's auth token, Twilio's
parameters, `CallStatus=ringing`); an outbound call placed through the Calls API rings this
phone, which answers, and the call's `Url` (or `Twiml`) is run the same way. Whoever holds the
phone presses keys, stays silent, talks into a `<Record>` or hangs up through the control API
(or the HTML page in `sandbox.phonepage`); every answer is the call with its transcript.

Status callbacks: an API call's `StatusCallback` per its `StatusCallbackEvent`; an incoming
call's number's `StatusCallback` when the call ends (Twilio sends only that one). Recordings are
Recording resources (`RE…`) whose `RecordingUrl` points at this sandbox.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import phonenumbers

from .callbacks import CallbacksApi
from .errors import TwilioApiError, not_found
from .http import Reply, SandboxRequest
from .recordings import RecordingsApi
from .state import API, API_VERSION, E164_RE, format_phone, logger, mask_phone, new_sid, public, rfc2822, utc_now
from .twiml import CallSession

# To -> the call's final status instead of answered (also for a number a <Dial> rings).
CALL_OUTCOMES = {"+15005550020": "busy", "+15005550021": "no-answer", "+15005550022": "failed"}
FINAL_CALL_STATUSES = {"completed", "busy", "no-answer", "failed", "canceled"}


def country_of(number: str) -> str:
    """The ISO country Twilio reports for a number (`FromCountry`, `ToCountry`), or ""."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number)) or ""
    except phonenumbers.NumberParseException:
        return ""


def e164_field(value: str | None) -> str:
    """A number from a form: an unencoded '+' (curl -d From=+1415...) arrives as a space."""
    value = (value or "").strip()
    return "+" + value if value[:1].isdigit() else value


def call_record(*, account_sid: str, sid: str, to: str, from_: str, direction: str, status: str, **extra: Any):
    """A Call resource as Twilio holds it, plus the sandbox's private bookkeeping (`_…`)."""
    now = utc_now()
    return {
        "sid": sid,
        "date_created": now,
        "date_updated": now,
        "parent_call_sid": extra.pop("parent_call_sid", None),
        "account_sid": account_sid,
        "to": to,
        "to_formatted": format_phone(to),
        "from": from_,
        "from_formatted": format_phone(from_),
        "phone_number_sid": extra.pop("phone_number_sid", None),
        "status": status,
        "start_time": None,
        "end_time": None,
        "duration": None,
        "price": None,
        "price_unit": "USD",
        "direction": direction,
        "answered_by": None,
        "api_version": API_VERSION,
        "forwarded_from": None,
        "group_sid": None,
        "caller_name": None,
        "queue_time": "0",
        "trunk_sid": None,
        "uri": f"{API}/Accounts/{account_sid}/Calls/{sid}.json",
        "subresource_uris": {"recordings": f"{API}/Accounts/{account_sid}/Calls/{sid}/Recordings.json"},
        "_url": None,
        "_method": "POST",
        "_twiml": None,
        "_status_callback": None,
        "_status_callback_method": "POST",
        "_events": {"completed"},
        "_machine_detection": None,
        "_sequence": 0,
        "_session": None,
        "_drive": threading.Lock(),
        **extra,
    }


class CallLine:
    """`twiml.Line` for one of the sandbox's calls: requests signed with the account's token,
    status changes and resources in the sandbox's state."""

    def __init__(self, sandbox: PhoneCalls, sid: str):
        self.sandbox, self.sid = sandbox, sid

    def request(self, kind: str, url: str, method: str, extra: dict[str, str]) -> tuple[int | None, str]:
        sandbox = self.sandbox
        with sandbox._lock:
            call = sandbox._calls[self.sid]
            params = {**sandbox._call_request_params(call), **extra}
            token = sandbox._accounts[call["account_sid"]].auth_token
        response = sandbox._deliver_webhook(kind, url, params, token, method=method)
        return (response.status_code, response.text) if response is not None else (None, "")

    def answer(self) -> None:
        with self.sandbox._lock:
            self.sandbox._set_call_status(self.sandbox._calls[self.sid], "in-progress")

    def end(self, status: str) -> None:
        with self.sandbox._lock:
            call = self.sandbox._calls[self.sid]
            if call["status"] in FINAL_CALL_STATUSES:
                return
            self.sandbox._set_call_status(call, status)
        self.sandbox._call_final_callback(self.sid)

    def recording_start(self) -> dict[str, Any]:
        with self.sandbox._lock:
            account_sid = self.sandbox._calls[self.sid]["account_sid"]
            recording = self.sandbox.recording_create(account_sid, self.sid, duration=0, status="in-progress")
        return {"sid": recording["sid"], "url": recording["media_url"]}

    def recording_finish(self, sid: str, status: str, duration: int) -> None:
        with self.sandbox._lock:
            recording = self.sandbox._recordings[sid]
            recording.update(status=status, duration=str(duration), _duration=duration, date_updated=utc_now())

    def recording_callback(self, sid: str, url: str, method: str) -> None:
        sandbox = self.sandbox
        with sandbox._lock:
            recording = sandbox._recordings[sid]
            params = sandbox.recording_callback_params(recording)
            token = sandbox._accounts[recording["account_sid"]].auth_token
        sandbox._deliver_webhook("recording-status", url, params, token, method=method)

    def dial(self, target: str, caller_id: str) -> dict[str, Any]:
        with self.sandbox._lock:
            child = self.sandbox._dial_leg(self.sandbox._calls[self.sid], target, caller_id)
            return {"status": child["status"], "sid": child["sid"], "duration": int(child["duration"] or 0)}

    def caller_id(self) -> str:
        with self.sandbox._lock:
            return self.sandbox._calls[self.sid]["from"]


class PhoneCalls(RecordingsApi, CallbacksApi):
    """Calls' status changes, their parameters and callbacks, and driving a call's session."""

    def _call_json(self, call: dict[str, Any]) -> dict[str, Any]:
        data = public(call)
        # `initiated` is a status callback's CallStatus only: the Call resource's status enum has
        # no such value, and a call being set up reads as `queued` there.
        if data.get("status") == "initiated":
            data["status"] = "queued"
        for key in ("date_created", "date_updated", "start_time", "end_time"):
            data[key] = rfc2822(call[key])
        return data

    def _set_call_status(self, call: dict[str, Any], status: str) -> None:
        now = utc_now()
        call["status"] = status
        call["date_updated"] = now
        call["_sequence"] += 1
        if status == "in-progress":
            call["start_time"] = now
        if status in FINAL_CALL_STATUSES:
            call["end_time"] = now
            started = call["start_time"]
            call["duration"] = str(max(1, round((now - started).total_seconds())) if started else 0)
            if started:
                call["price"] = "-0.01400" if call["direction"] != "inbound" else "-0.00850"

    @staticmethod
    def _call_request_params(call: dict[str, Any]) -> dict[str, str]:
        """What Twilio posts about a call to its TwiML URLs (and, plus more, to callbacks)."""
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
        }
        for prefix, number in (("From", call["from"]), ("To", call["to"])):
            role = "Caller" if prefix == "From" else "Called"
            for name in ("City", "State", "Zip"):
                params[prefix + name] = params[role + name] = ""
            params[prefix + "Country"] = params[role + "Country"] = country_of(number)
        if call["parent_call_sid"]:
            params["ParentCallSid"] = call["parent_call_sid"]
        if call["answered_by"]:  # asked for with MachineDetection
            params["AnsweredBy"] = call["answered_by"]
        return params

    def _call_callback_params(self, call: dict[str, Any]) -> dict[str, str]:
        params = {
            **self._call_request_params(call),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(call["_sequence"] - 1),
            "Timestamp": rfc2822(call["date_updated"]),
        }
        if call["end_time"] is not None:
            params["CallDuration"] = call["duration"]
            params["Duration"] = str(math.ceil(int(call["duration"]) / 60))
        return params

    def _call_final_callback(self, sid: str) -> None:
        """The `completed` event (whatever the final status) to the call's status callback."""
        with self._lock:
            call = self._calls[sid]
            url = call["_status_callback"] if "completed" in call["_events"] else None
            params = self._call_callback_params(call)
            token = self._accounts[call["account_sid"]].auth_token
            method = call["_status_callback_method"]
        logger.info("Call %s ended %s", sid, params["CallStatus"])
        if url:
            self._deliver_webhook("call-status", url, params, token, method=method)

    def _dial_leg(self, parent: dict[str, Any], target: str, caller_id: str) -> dict[str, Any]:
        """The child call a `<Dial>` places: answered and done at once, or a magic outcome."""
        child = call_record(
            account_sid=parent["account_sid"],
            sid=new_sid("CA"),
            to=target,
            from_=caller_id,
            direction="outbound-dial",
            status="queued",
            parent_call_sid=parent["sid"],
            _seq=self._next_seq(),
        )
        self._calls[child["sid"]] = child
        outcome = CALL_OUTCOMES.get(target)
        if outcome is None:
            self._set_call_status(child, "in-progress")
        self._set_call_status(child, outcome or "completed")
        logger.info("Call %s dialled %s: %s", parent["sid"], mask_phone(target), child["status"])
        return child

    def _call_drive(self, sid: str, action: Callable[[CallSession], None]) -> None:
        """Run `action` on the call's session, one driver at a time, without the state lock
        (the portal may call the sandbox while it answers a request)."""
        with self._lock:
            call = self._calls.get(sid)
            if call is None:
                raise TwilioApiError(404, 20404, f"No call {sid}")
            session, drive = call["_session"], call["_drive"]
        if session is None:
            raise TwilioApiError(409, 21220, f"Call {sid} has not been answered")
        with drive:
            try:
                action(session)
            except ValueError as exc:
                raise TwilioApiError(409, 21220, f"Call {sid}: {exc}") from None

    def _call_answer(self, sid: str, *, answered: bool) -> CallSession:
        with self._lock:
            session = CallSession(CallLine(self, sid), answered=answered)
            self._calls[sid]["_session"] = session
            return session


class PhoneControl(PhoneCalls):
    """The control endpoints of the virtual phone (see the package docstring)."""

    def _call_view(self, sid: str) -> dict[str, Any]:
        """The call as the API shows it, with what the phone heard and where it stands."""
        with self._lock:
            call = self._calls.get(sid)
            if call is None:
                raise not_found(f"/sandbox/calls/{sid}")
            session: CallSession | None = call["_session"]
            waiting = session.waiting if session else None
            return {
                **self._call_json(call),
                "waiting_for": None if waiting is None else ("digits" if waiting.verb.tag == "Gather" else "recording"),
                "transcript": list(session.transcript) if session else [],
                "errors": list(session.errors) if session else [],
                "recordings": [r["sid"] for r in self._sorted(self._recordings.values()) if r["call_sid"] == sid],
                "dialled": [c["to"] for c in self._sorted(self._calls.values()) if c["parent_call_sid"] == sid],
            }

    def _h_ctl_call_incoming(self, req: SandboxRequest) -> Reply:
        """Someone calls one of the accounts' numbers: its VoiceUrl is fetched (signed) and run
        until the caller must act. Answers the call with its transcript."""
        from_, to = e164_field(req.get("From")), e164_field(req.get("To"))
        if not E164_RE.fullmatch(from_) or not E164_RE.fullmatch(to):
            raise TwilioApiError(400, 21211, "From and To must be E.164 numbers")
        with self._lock:
            number = self._owner_of(to)
            if number is None:
                raise TwilioApiError(404, 20404, f"No account has the number {to}")
            if not number["voice_url"]:
                raise TwilioApiError(400, 21205, f"{to} has no VoiceUrl")
            sid = new_sid("CA")
            self._calls[sid] = call_record(
                account_sid=number["account_sid"],
                sid=sid,
                to=to,
                from_=from_,
                direction="inbound",
                status="ringing",
                phone_number_sid=number["sid"],
                _status_callback=number["status_callback"] or None,
                _status_callback_method=number["status_callback_method"],
                _seq=self._next_seq(),
            )
            url, method = number["voice_url"], number["voice_method"]
            fallback = (number["voice_fallback_url"], number["voice_fallback_method"])
        logger.info("Incoming call %s %s -> %s", sid, mask_phone(from_), to)
        self._call_answer(sid, answered=False)
        self._call_drive(sid, lambda s: s.start(url, method, fallback))
        return self._call_reply(req, sid, 201)

    def _call_reply(self, req: SandboxRequest, sid: str, status: int = 200) -> Reply:
        """The call and its transcript; a form on the phone's page is sent back to it."""
        if req.get("html"):
            return Reply(303, headers={"Location": f"/sandbox/phone/{sid}"})
        return Reply(status, self._call_view(sid))

    def _h_ctl_call(self, req: SandboxRequest) -> Reply:
        return Reply(200, self._call_view(req.params["Sid"]))

    def _h_ctl_call_digits(self, req: SandboxRequest) -> Reply:
        """Keys pressed (0-9, * and #); empty: the caller stays silent until the timeout."""
        digits = (req.get("digits") or req.get("Digits") or "").strip()
        if not set(digits) <= set("0123456789*#"):
            raise TwilioApiError(400, 21220, "digits may only hold 0-9, * and #")
        self._call_drive(req.params["Sid"], lambda s: s.press(digits))
        return self._call_reply(req, req.params["Sid"])

    def _h_ctl_call_timeout(self, req: SandboxRequest) -> Reply:
        self._call_drive(req.params["Sid"], lambda s: s.timeout())
        return self._call_reply(req, req.params["Sid"])

    def _h_ctl_call_speak(self, req: SandboxRequest) -> Reply:
        """The caller talks `seconds` (default 5) into a `<Record>`."""
        try:
            seconds = int(req.get("seconds") or "5")
        except ValueError:
            raise TwilioApiError(400, 21220, "seconds must be a whole number") from None
        if not 1 <= seconds <= 3600:
            raise TwilioApiError(400, 21220, "seconds must be between 1 and 3600")
        self._call_drive(req.params["Sid"], lambda s: s.speak(seconds))
        return self._call_reply(req, req.params["Sid"])

    def _h_ctl_call_hangup(self, req: SandboxRequest) -> Reply:
        self._call_drive(req.params["Sid"], lambda s: s.hangup())
        return self._call_reply(req, req.params["Sid"])
