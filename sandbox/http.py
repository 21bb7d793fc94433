"""The sandbox's HTTP plumbing: the request and reply records, the route table (every
Twilio path the sandbox answers, and its control endpoints), the dispatcher (fault injection,
authentication, the handler, Twilio's error JSON) and the stdlib request handler."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs, urlsplit

from .errors import TwilioApiError, not_found
from .state import API, Account, Fault, SandboxState, logger


@dataclass
class SandboxRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    headers: Any
    host: str
    body: bytes = b""
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
class Reply:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    stall: float = 0.0  # seconds to hold the connection unanswered before dropping it


class Route(NamedTuple):
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: str
    control: bool
    locked: bool
    own_auth: bool  # the handler authenticates (SendGrid's Bearer key), not Twilio's Basic auth


def route(method: str, template: str, handler: str, *, locked: bool = True, own_auth: bool = False) -> Route:
    regex = ""
    for piece in re.split(r"(\{\w+\})", template):
        if piece.startswith("{"):
            regex += f"(?P<{piece[1:-1]}>[A-Za-z0-9]+)"
        else:
            regex += re.escape(piece)
    control = template.startswith("/sandbox")
    return Route(method, template, re.compile(regex), handler, control, locked, own_auth)


_A = API + "/Accounts/{AccountSid}"
ROUTES = [
    # Accounts and keys (v2010)
    route("GET", API + "/Accounts.json", "list_accounts"),
    route("POST", API + "/Accounts.json", "create_account"),
    route("GET", API + "/Accounts/{AccountSid}.json", "fetch_account"),
    route("POST", API + "/Accounts/{AccountSid}.json", "update_account"),
    route("GET", _A + "/Keys.json", "list_keys"),
    route("POST", _A + "/Keys.json", "create_key"),
    route("GET", _A + "/Keys/{KeySid}.json", "fetch_key"),
    route("POST", _A + "/Keys/{KeySid}.json", "update_key"),
    route("DELETE", _A + "/Keys/{KeySid}.json", "delete_key"),
    # Numbers
    route("GET", _A + "/IncomingPhoneNumbers.json", "list_numbers"),
    route("POST", _A + "/IncomingPhoneNumbers.json", "create_number"),
    route("GET", _A + "/IncomingPhoneNumbers/{Sid}.json", "fetch_number"),
    route("POST", _A + "/IncomingPhoneNumbers/{Sid}.json", "update_number"),
    route("DELETE", _A + "/IncomingPhoneNumbers/{Sid}.json", "delete_number"),
    route("GET", _A + "/AvailablePhoneNumbers/{Country}/{Kind}.json", "available_numbers"),
    # Messages and calls
    route("GET", _A + "/Messages.json", "list_messages"),
    route("POST", _A + "/Messages.json", "create_message"),
    route("GET", _A + "/Messages/{Sid}.json", "fetch_message"),
    route("POST", _A + "/Messages/{Sid}.json", "update_message"),
    route("DELETE", _A + "/Messages/{Sid}.json", "delete_message"),
    route("GET", _A + "/Calls.json", "list_calls"),
    route("POST", _A + "/Calls.json", "create_call"),
    route("GET", _A + "/Calls/{Sid}.json", "fetch_call"),
    route("POST", _A + "/Calls/{Sid}.json", "update_call"),
    # Recordings (sandbox/recordings.py): metadata, and the audio with Range support
    route("GET", _A + "/Recordings/{Sid}.json", "fetch_recording"),
    route("DELETE", _A + "/Recordings/{Sid}.json", "delete_recording"),
    route("GET", _A + "/Recordings/{Sid}.mp3", "recording_mp3"),
    route("GET", _A + "/Recordings/{Sid}.wav", "recording_wav"),
    route("GET", _A + "/Recordings/{Sid}", "recording_wav"),
    # Verify v2
    route("GET", "/v2/Services", "list_verify_services"),
    route("POST", "/v2/Services", "create_verify_service"),
    route("GET", "/v2/Services/{ServiceSid}", "fetch_verify_service"),
    route("POST", "/v2/Services/{ServiceSid}", "update_verify_service"),
    route("DELETE", "/v2/Services/{ServiceSid}", "delete_verify_service"),
    route("POST", "/v2/Services/{ServiceSid}/Verifications", "create_verification"),
    route("GET", "/v2/Services/{ServiceSid}/Verifications/{Sid}", "fetch_verification"),
    route("POST", "/v2/Services/{ServiceSid}/Verifications/{Sid}", "update_verification"),
    route("POST", "/v2/Services/{ServiceSid}/VerificationCheck", "check_verification"),
    # Messaging v1
    route("GET", "/v1/Services", "list_messaging_services"),
    route("POST", "/v1/Services", "create_messaging_service"),
    route("GET", "/v1/Services/{ServiceSid}", "fetch_messaging_service"),
    route("POST", "/v1/Services/{ServiceSid}", "update_messaging_service"),
    route("DELETE", "/v1/Services/{ServiceSid}", "delete_messaging_service"),
    route("GET", "/v1/Services/{ServiceSid}/PhoneNumbers", "list_service_numbers"),
    route("POST", "/v1/Services/{ServiceSid}/PhoneNumbers", "add_service_number"),
    route("GET", "/v1/Services/{ServiceSid}/PhoneNumbers/{Sid}", "fetch_service_number"),
    route("DELETE", "/v1/Services/{ServiceSid}/PhoneNumbers/{Sid}", "remove_service_number"),
    # SendGrid v3 (sandbox/sendgrid.py)
    route("POST", "/v3/mail/send", "sendgrid_mail_send", locked=False, own_auth=True),
    # Accounts v1
    route("POST", "/v1/AuthTokens/Secondary", "create_secondary_token"),
    route("DELETE", "/v1/AuthTokens/Secondary", "delete_secondary_token"),
    route("POST", "/v1/AuthTokens/Promote", "promote_secondary_token"),
    # Sandbox control (no auth)
    route("GET", "/sandbox/", "ctl_index"),
    route("GET", "/sandbox", "ctl_index"),
    route("GET", "/sandbox/accounts", "ctl_accounts"),
    route("POST", "/sandbox/accounts/{AccountSid}", "ctl_account"),
    route("POST", "/sandbox/accounts/{AccountSid}/numbers", "ctl_seed_number"),
    route("GET", "/sandbox/faults", "ctl_list_faults"),
    route("POST", "/sandbox/faults", "ctl_add_fault"),
    route("DELETE", "/sandbox/faults", "ctl_clear_faults"),
    route("GET", "/sandbox/faults/injected", "ctl_faults_injected"),
    route("GET", "/sandbox/messages", "ctl_messages"),
    route("GET", "/sandbox/calls", "ctl_calls"),
    route("POST", "/sandbox/recordings", "ctl_recordings"),
    route("GET", "/sandbox/webhooks", "ctl_webhooks"),
    route("GET", "/sandbox/verify-codes", "ctl_verify_codes"),
    route("POST", "/sandbox/inbound", "ctl_inbound", locked=False),
    route("POST", "/sandbox/reset", "ctl_reset"),
    route("POST", "/sandbox/outage", "ctl_outage", locked=False),
    route("GET", "/sandbox/sendgrid", "ctl_sendgrid"),
    route("POST", "/sandbox/sendgrid", "ctl_sendgrid_settings"),
    route("POST", "/sandbox/sendgrid/events", "ctl_sendgrid_events", locked=False),
]


def parse_body(body: bytes, content_type: str) -> dict[str, list[str]]:
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


def match_route(method: str, path: str) -> tuple[Route | None, dict[str, str] | None]:
    """Returns (route, params); (None, {}) when the path exists for another method."""
    path_known = False
    for candidate in ROUTES:
        found = candidate.pattern.fullmatch(path)
        if found:
            if candidate.method == method:
                return candidate, found.groupdict()
            path_known = True
    return None, ({} if path_known else None)


def route_error(req: SandboxRequest, params: dict[str, str] | None) -> dict[str, Any]:
    if params is None:
        return not_found(req.path).payload()
    return TwilioApiError(405, 20004, "Method not allowed").payload()


class HttpDispatch(SandboxState):
    """The sandbox's HTTP server, and how one request becomes a handler call
    (`_h_<route.handler>`, which the product classes define)."""

    def _serve_on(self, host: str, port: int) -> None:
        """Bind the server (port 0: any free port); `start` or `serve_forever` then serve."""
        self._thread: threading.Thread | None = None
        self._server = self._bind(host, port)
        # Set while the listener is up; cleared during an outage (`outage_begin`).
        self._listening = threading.Event()
        self._listening.set()
        self._serving = threading.Event()  # the serve loop is inside serve_forever
        self._outage_timer: threading.Timer | None = None

    def _bind(self, host: str, port: int) -> ThreadingHTTPServer:
        handler = type("_BoundHandler", (HttpHandler,), {"sandbox": self})
        server = ThreadingHTTPServer((host, port), handler)
        server.daemon_threads = True
        return server

    def _serve_loop(self) -> None:
        """Serve until `stop`, sitting out outages (the listener is rebound after each)."""
        while not self._stopping.is_set():
            self._listening.wait()
            if self._stopping.is_set():
                return
            server = self._server
            self._serving.set()
            try:
                server.serve_forever(poll_interval=0.05)  # short: stop() and outages return quickly
            finally:
                self._serving.clear()

    def outage_begin(self, *, seconds: float | None = None) -> None:
        """Make Twilio unreachable: the listener closes, so every connection is refused (the
        "definitely not sent" failure), until `outage_end`, or after `seconds` when given.
        The control API goes down with it, hence the timer for outages started over HTTP."""
        with self._lock:
            if not self._listening.is_set():
                return
            self._listening.clear()
            server = self._server
        if self._serving.is_set():
            server.shutdown()
        server.server_close()
        logger.info("Sandbox outage: connections refused%s", f" for {seconds:g} s" if seconds else "")
        if seconds:
            self._outage_timer = threading.Timer(seconds, self.outage_end)
            self._outage_timer.daemon = True
            self._outage_timer.start()

    def outage_end(self) -> None:
        """Listen again on the same address after `outage_begin`."""
        with self._lock:
            if self._listening.is_set() or self._stopping.is_set():
                return
            host, port = self._server.server_address[:2]
            self._server = self._bind(host, port)
            self._listening.set()
        logger.info("Sandbox outage over: listening on %s", self.base_url)

    def _h_ctl_outage(self, req: SandboxRequest) -> tuple[int, Any]:
        """Start an outage of `seconds` (required: nothing could end it over HTTP)."""
        try:
            seconds = float(req.get("seconds") or "")
        except ValueError:
            raise TwilioApiError(400, 20001, "seconds must be a number") from None
        if not 0 < seconds <= 3600:
            raise TwilioApiError(400, 20001, "seconds must be between 0 and 3600")
        # After this answer is written: closing the listener does not cut accepted connections.
        threading.Timer(0.05, self.outage_begin, kwargs={"seconds": seconds}).start()
        return 202, {"outage_seconds": seconds}

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    def start(self) -> Self:
        """Serve on a daemon thread; returns self so `TwilioSandbox(...).start()` chains."""
        self._thread = threading.Thread(target=self._serve_loop, name="twilio-sandbox", daemon=True)
        self._thread.start()
        logger.info("Twilio sandbox listening on %s", self.base_url)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (management command)."""
        try:
            self._serve_loop()
        finally:
            self._stopping.set()
            self._server.server_close()

    def stop(self) -> None:
        self._stopping.set()
        self._listening.set()  # wakes a serve loop sitting out an outage
        if self._outage_timer is not None:
            self._outage_timer.cancel()
        if self._thread is not None:
            if self._serving.is_set():
                self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stall_wait(self, seconds: float) -> None:
        """Hold a stalled connection `seconds`, or less when the server stops."""
        self._stopping.wait(seconds)

    def add_fault(self, fault: Fault) -> None:
        """Make the next matching API request(s) fail (see `Fault`)."""
        with self._lock:
            self._faults.append(fault)

    def _authenticate(self, req: SandboxRequest) -> None:
        """Sets `req.principal` or raises 401; `accounts.AccountsApi` answers it."""
        raise NotImplementedError

    def handle_http(self, method: str, raw_path: str, headers: Any, body: bytes) -> Reply:
        """Route one HTTP request: fault injection, authentication, the handler, errors."""
        parts = urlsplit(raw_path)
        content_type = (headers.get("Content-Type") or "").lower()
        try:
            # SendGrid's JSON (and the SendGrid control bodies) are read raw by their handlers.
            form = {} if parts.path.startswith(("/v3/", "/sandbox/sendgrid")) else parse_body(body, content_type)
        except TwilioApiError as err:
            return Reply(err.status, err.payload())
        req = SandboxRequest(
            method=method,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            form=form,
            headers=headers,
            host=headers.get("Host") or urlsplit(self.base_url).netloc,
            body=body,
        )
        found, params = match_route(method, req.path)
        if found is None:
            return Reply(404 if params is None else 405, route_error(req, params))
        req.params = params
        fault = None if found.control else self._take_fault(req)
        if fault is not None and fault.mode == "error":
            err = TwilioApiError(fault.status, fault.code, fault.message)
            logger.info("Injected fault %s on %s %s", fault.code, method, req.path)
            reply = Reply(fault.status, err.payload())
            if fault.status == 429:
                reply.headers["Retry-After"] = "1"
            return reply
        if fault is not None and fault.mode == "stall":
            # The request arrived but nothing is done: the client times out not knowing.
            logger.info("Injected stall on %s %s", method, req.path)
            return Reply(0, drop=True, stall=fault.stall_seconds)
        reply = self._dispatch(found, req, method)
        if fault is not None and fault.mode in ("accept_then_drop", "accept_then_stall"):
            logger.info("Injected %s on %s %s", fault.mode, method, req.path)
            reply.drop = True
            reply.stall = fault.stall_seconds if fault.mode == "accept_then_stall" else 0.0
        return reply

    def _dispatch(self, found: Route, req: SandboxRequest, method: str) -> Reply:
        """The handler's reply, with Twilio's error JSON for a `TwilioApiError`."""
        try:
            if found.locked:
                with self._lock:
                    reply = self._call(found, req)
            else:
                reply = self._call(found, req)
        except TwilioApiError as err:
            reply = Reply(err.status, err.payload())
            if err.status == 401:
                reply.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        except Exception:  # a sandbox bug must answer 500, never kill the connection thread
            logger.exception("Sandbox error on %s %s", method, req.path)
            reply = Reply(500, TwilioApiError(500, 20500, "Internal Server Error").payload())
        return reply

    def _call(self, target: Route, req: SandboxRequest) -> Reply:
        if not target.control and not target.own_auth:
            self._authenticate(req)
        result = getattr(self, "_h_" + target.handler)(req)
        return result if isinstance(result, Reply) else Reply(*result)

    def _take_fault(self, req: SandboxRequest) -> Fault | None:
        """The first live fault matching `req`, used up by one (and logged as injected)."""
        now = time.monotonic()
        to = req.get("To")
        with self._lock:
            self._faults[:] = [f for f in self._faults if f.live(now)]
            for fault in self._faults:
                if fault.matches(req.method, req.path, to):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    self._faults_injected.append(
                        {
                            "at": time.time(),
                            "mode": fault.mode,
                            "status": fault.status if fault.mode == "error" else None,
                            "method": req.method,
                            "path": req.path,
                            "to": to,
                        }
                    )
                    return fault
        return None


class HttpHandler(BaseHTTPRequestHandler):
    """Translates HTTP to `TwilioSandbox.handle_http` and back; keeps connections alive."""

    protocol_version = "HTTP/1.1"
    server_version = "TwilioSandbox/1.0"
    timeout = 60
    sandbox: HttpDispatch

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
        if reply.stall:
            # A Twilio that took the request and went quiet: the client's read timeout fires.
            self.sandbox.stall_wait(reply.stall)
        if reply.drop:
            # Simulates Twilio (or the network) dying after the request was accepted.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        media = isinstance(reply.payload, bytes)  # a recording's audio: its headers come with it
        data = reply.payload if media else b"" if reply.payload is None else json.dumps(reply.payload).encode()
        self.send_response(reply.status)
        if data and not media:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)
