"""Voice: Calls (place, with Twilio's magic outcome numbers; the progression initiated ->
ringing -> in-progress, where the sandbox's virtual phone answers and the call's `Url` (signed)
or `Twiml` runs until it ends, sending the status callbacks its `StatusCallbackEvent` asks for;
list, fetch, cancel, hang up). The phone itself is `sandbox.phone`."""

from __future__ import annotations

from typing import Any

from .errors import TwilioApiError, not_found
from .http import Reply, SandboxRequest
from .paging import v2010_page
from .phone import CALL_OUTCOMES, FINAL_CALL_STATUSES, PhoneControl, call_record
from .state import E164_RE, MAGIC_FROM, logger, mask_phone, new_sid


class VoiceApi(PhoneControl):
    """The calls of each account."""

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
        sid = new_sid("CA")
        call = call_record(
            account_sid=account.sid,
            sid=sid,
            to=to,
            from_=from_,
            direction="outbound-api",
            status="queued",
            phone_number_sid=owned["sid"] if owned else None,
            _url=req.get("Url"),
            _method=(req.get("Method") or "POST").upper(),
            _twiml=req.get("Twiml"),
            _status_callback=req.get("StatusCallback"),
            _status_callback_method=(req.get("StatusCallbackMethod") or "POST").upper(),
            _events=events or {"completed"},
            _machine_detection=req.get("MachineDetection"),
            _seq=self._next_seq(),
        )
        self._calls[sid] = call
        logger.info("Call %s %s -> %s", sid, from_, mask_phone(to))
        self._spawn(self._call_lifecycle, sid)
        return 201, self._call_json(call)

    def _call_lifecycle(self, sid: str) -> None:
        """initiated -> ringing -> answered by the virtual phone (the TwiML runs until the
        caller must act; the call ends with it), or a magic outcome."""
        with self._lock:
            call = self._calls.get(sid)
            outcome = CALL_OUTCOMES.get(call["to"]) if call else None
        steps = [("initiated", "initiated"), ("ringing", "ringing")]
        steps += [("completed", outcome)] if outcome else [("answered", "in-progress")]
        for event, status in steps:
            if self._stopping.wait(self.callback_delay):
                return
            with self._lock:
                call = self._calls.get(sid)
                if call is None or call["status"] in FINAL_CALL_STATUSES:
                    return
                self._set_call_status(call, status)
                if status == "in-progress" and call["_machine_detection"]:
                    call["answered_by"] = "human"  # the virtual phone's holder says hello
                params = self._call_callback_params(call)
                token = self._accounts[call["account_sid"]].auth_token
                callback = call["_status_callback"] if event in call["_events"] else None
                callback_method = call["_status_callback_method"]
                url, method, twiml = call["_url"], call["_method"], call["_twiml"]
            if callback:
                self._deliver_webhook("call-status", callback, params, token, method=callback_method)
        if outcome:
            return
        self._call_answer(sid, answered=True)
        if twiml:
            self._call_drive(sid, lambda s: s.start_twiml(twiml))
        else:
            self._call_drive(sid, lambda s: s.start(url, method))

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
            self._spawn(self._call_final_callback, call["sid"])
        elif status == "completed" and call["status"] == "in-progress":
            # Twilio hangs up the live call: the session ends (a Record in progress is kept).
            self._spawn(self._call_hang_up, call["sid"])
        return 200, self._call_json(call)

    def _call_hang_up(self, sid: str) -> None:
        try:
            self._call_drive(sid, lambda s: s.hangup(by="api"))
        except TwilioApiError as err:  # not answered yet: nothing runs, nothing to end
            logger.info("Call %s: %s", sid, err.message)
