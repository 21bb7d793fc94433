"""Contract test: the sandbox's ANSWERS (and the SDK's requests), validated by Prism against
Twilio's official OpenAPI specs (twilio-oai), in proxy mode.

test_prism_contract.py checks what the portal sends against Prism's mock; this checks what the
sandbox (the `sandbox` package) answers, so tests that run against the sandbox see Twilio's shapes.
One `prism proxy <spec> <sandbox>` per spec (api v2010, messaging v1, accounts v1, verify v2),
all in front of one in-process sandbox; the real twilio SDK talks to the proxies (its HTTP client
routes each path to its spec's proxy, like PrismHttpClient). Without `--errors` Prism passes the
sandbox's answer through unchanged and lists what breaks the spec in its `sl-violations` header.

What prism-cli 5 proxy mode checks (tried by hand with 5.14):
- requests: format, pattern, enum, required parameters. Reported, and still forwarded;
- responses: the body against the schema of its status: types, enums, patterns, lengths and the
  standard formats (`date-time`, `uri`). A status the spec doesn't document (every Twilio error
  but Verify's 429) only gets a warning "Unable to match the returned status code".
What it misses, so `_schema_problems` and `_error_problems` check it here, from the same specs:
- Twilio's own formats are unknown to it: `date-time-rfc-2822` (every v2010 date) isn't checked;
- Twilio's schemas declare no `required` properties: a property the sandbox leaves out is silent;
- error bodies of undocumented statuses: checked against Twilio's error schema, which the specs
  declare once (Verify's 429, the same four properties as Recordings' 408) and is read from there.

Known quirks of Twilio's spec are filtered by SPEC_QUIRKS below, and nothing else: any other
violation is the sandbox's to fix. The last test proves the harness catches a bad answer.

Needs the prism binary and the specs like test_prism_contract.py; skipped without them unless
REQUIRE_SERVICES=1. Prism and the sandbox start once for the module.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, urlunsplit

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from sandbox.server import TwilioSandbox
from tests.tenants.test_prism_contract import (
    SPEC_DIR,
    STARTUP_SECONDS,
    _free_port,
    _listening,
    _prism_bin,
    _unavailable,
)
from tests.tenants.test_prism_contract import SPECS as REQUEST_SPECS

pytestmark = pytest.mark.slow

SPECS = {**REQUEST_SPECS, "verify": "twilio_verify_v2.json"}
HANDSET = "+14155550100"

# --- The allow-list: quirks of Twilio's spec, not of the sandbox ---------------------------------


@dataclass(frozen=True)
class Quirk:
    """A violation Twilio's own API commits too: Prism's `code`, text in its message, the
    property paths (list indexes as `*`), and the values Twilio really sends there."""

    code: str
    detail: str
    paths: frozenset[str]
    accepts: Callable[[object], bool]
    why: str


SPEC_QUIRKS = {
    "api": [
        Quirk(
            "format",
            'format "uri"',
            frozenset({"uri", "first_page_uri", "next_page_uri", "previous_page_uri"}),
            lambda value: isinstance(value, str) and value.startswith("/2010-04-01/"),
            "v2010 list envelopes declare these `format: uri`, but Twilio serves them relative to "
            "https://api.twilio.com (so do its examples); the SDK prepends its domain",
        ),
        Quirk(
            "format",
            'format "uri"',
            frozenset(
                f"{parent}{name}"
                for parent in ("", "incoming_phone_numbers.*.")
                for name in ("sms_url", "sms_fallback_url", "status_callback")
            ),
            lambda value: value == "",
            'an IncomingPhoneNumber\'s unset SMS URLs and status callback are "" at Twilio (its own '
            "examples; the unset voice URLs are null), yet declared `format: uri`",
        ),
        Quirk(
            "type",
            "must be number",
            frozenset({"available_phone_numbers.*.latitude", "available_phone_numbers.*.longitude"}),
            lambda value: isinstance(value, str) and re.fullmatch(r"-?\d+\.\d+", value) is not None,
            'declared `number`, but Twilio sends a decimal string ("19.720000" in its own examples); '
            "the SDK parses either into a Decimal",
        ),
    ],
}
# Twilio documents only an operation's success status (its errors live in its error dictionary),
# so Prism warns about every error status. Accepted only for a 4xx/5xx the operation doesn't
# document; the body is then checked against Twilio's error schema (`_error_problems`).
UNDOCUMENTED_STATUS = "Unable to match the returned status code"

RFC_2822 = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} \+0000"
)


def _spec_for(path: str) -> str:
    if path.startswith("/2010-04-01/"):
        return "api"
    if path.startswith("/v1/AuthTokens"):
        return "accounts"
    if path.startswith("/v1/Services"):
        return "messaging"
    if path.startswith("/v2/"):
        return "verify"
    raise AssertionError(f"No Twilio spec loaded for {path}: add it to SPECS and _spec_for")


# --- Reading the specs ---------------------------------------------------------------------------


@functools.cache
def _spec(name: str) -> dict:
    return json.loads((SPEC_DIR / SPECS[name]).read_text())


@functools.cache
def _operations(name: str) -> list[tuple[re.Pattern[str], dict]]:
    compiled = []
    for template, operations in _spec(name)["paths"].items():
        pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in re.split(r"(\{\w+\})", template))
        compiled.append((re.compile(pattern), operations))
    return compiled


def _resolve(name: str, schema: dict) -> dict:
    while "$ref" in schema:
        schema = _spec(name)["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _documented_response(name: str, method: str, path: str, status: int) -> dict | None:
    for pattern, operations in _operations(name):
        if pattern.fullmatch(path):
            return operations.get(method.lower(), {}).get("responses", {}).get(str(status))
    return None


@functools.cache
def _error_schema() -> dict:
    """Twilio's error body, as the Verify spec declares it for 429 on creating a Verification."""
    responses = _spec("verify")["paths"]["/v2/Services/{ServiceSid}/Verifications"]["post"]["responses"]
    return responses["429"]["content"]["application/json"]["schema"]


JSON_TYPES = {"integer": int, "string": str}  # all Twilio's error schema uses


def _schema_problems(name: str, schema: dict, value: object, examples: list, where: str) -> list[str]:
    """What Prism can't see: v2010 dates not in RFC 2822, and declared properties left out.

    Twilio's schemas require nothing, and its own answers leave some declared properties out
    (its AvailablePhoneNumbers list has no paging fields), so a property counts as missing when
    Twilio's examples for the operation (recorded answers) have it, or have nothing to say at
    that level."""
    schema = _resolve(name, schema)
    if value is None:
        return []
    if isinstance(value, dict) and schema.get("properties"):
        examples = [e for e in examples if isinstance(e, dict)]
        seen = set().union(*examples)
        found = []
        for prop, sub in schema["properties"].items():
            if prop in value:
                nested = [e[prop] for e in examples if prop in e]
                found += _schema_problems(name, sub, value[prop], nested, f"{where}.{prop}")
            elif prop in seen or not examples:
                found.append(f"{where}.{prop} is missing (the spec declares it, Twilio sends it)")
        return found
    if isinstance(value, list) and "items" in schema:
        items = [item for e in examples if isinstance(e, list) for item in e]
        return [
            p for i, v in enumerate(value) for p in _schema_problems(name, schema["items"], v, items, f"{where}[{i}]")
        ]
    if schema.get("format") == "date-time-rfc-2822" and not (isinstance(value, str) and RFC_2822.fullmatch(value)):
        return [f"{where} = {value!r} is not an RFC 2822 date"]
    return []


# --- One request/answer pair, and everything wrong with it ----------------------------------------


@dataclass
class Exchange:
    spec: str
    method: str
    path: str
    status: int
    text: str
    violations: list[dict]

    def json(self) -> object:
        return json.loads(self.text) if self.text else None

    def documented(self) -> dict | None:
        return _documented_response(self.spec, self.method, self.path, self.status)


def _value_at(body: object, steps: list[str]) -> object:
    for step in steps:
        if isinstance(body, list) and step.isdigit() and int(step) < len(body):
            body = body[int(step)]
        elif isinstance(body, dict) and step in body:
            body = body[step]
        else:
            return None
    return body


def _is_spec_quirk(exchange: Exchange, violation: dict) -> bool:
    location = [str(step) for step in violation.get("location") or ()]
    message = violation.get("message", "")
    if location == ["response"] and message.startswith(UNDOCUMENTED_STATUS):
        return exchange.status >= 400 and exchange.documented() is None
    if location[:2] != ["response", "body"]:
        return False
    path = ".".join("*" if step.isdigit() else step for step in location[2:])
    value = _value_at(exchange.json(), location[2:])
    return any(
        violation.get("code") == quirk.code and quirk.detail in message and path in quirk.paths and quirk.accepts(value)
        for quirk in SPEC_QUIRKS.get(exchange.spec, [])
    )


def _error_problems(exchange: Exchange) -> list[str]:
    """Twilio's error JSON: code, message, more_info and status, typed as the spec declares."""
    try:
        body = exchange.json()
    except ValueError:
        return [f"error body is not JSON: {exchange.text[:200]!r}"]
    if not isinstance(body, dict):
        return [f"error body is not a JSON object: {exchange.text[:200]!r}"]
    found = []
    for prop, schema in _error_schema()["properties"].items():
        if prop not in body:
            found.append(f"error body has no {prop!r}")
        elif type(body[prop]) is not JSON_TYPES[schema["type"]]:
            found.append(f"error {prop!r} is {body[prop]!r}, the spec says {schema['type']}")
    if body.get("status") != exchange.status:
        found.append(f"error 'status' {body.get('status')!r} differs from HTTP {exchange.status}")
    if (
        isinstance(body.get("code"), int)
        and body.get("more_info") != f"https://www.twilio.com/docs/errors/{body['code']}"
    ):
        found.append(f"error 'more_info' {body.get('more_info')!r} isn't the page of code {body['code']}")
    return found


def _describe(violation: dict) -> str:
    return f"{'.'.join(map(str, violation.get('location', [])))}: {violation.get('code')}: {violation.get('message')}"


def problems(exchanges: list[Exchange]) -> list[str]:
    """Everything in these exchanges that breaks Twilio's spec and isn't a known spec quirk."""
    found = []
    for ex in exchanges:
        where = f"{ex.method} {ex.path} -> {ex.status}"
        found += [f"{where}: {_describe(v)}" for v in ex.violations if not _is_spec_quirk(ex, v)]
        if ex.status >= 400:
            found += [f"{where}: {p}" for p in _error_problems(ex)]
        elif ex.text:
            content = (ex.documented() or {}).get("content", {}).get("application/json", {})
            examples = [e.get("value") for e in content.get("examples", {}).values()]
            found += [
                f"{where}: {p}"
                for p in _schema_problems(ex.spec, content.get("schema", {}), ex.json(), examples, "body")
            ]
    return found


# --- Prism in front of the sandbox ---------------------------------------------------------------


def _start_proxies(upstream: str, specs: dict[str, str]) -> tuple[dict[str, int], list[subprocess.Popen]]:
    if not all((SPEC_DIR / name).is_file() for name in specs.values()):
        _unavailable(f"Twilio OpenAPI specs not found in {SPEC_DIR} (set TWILIO_OAI_DIR)")
    binary = _prism_bin()
    if binary is None:
        _unavailable("prism not installed: npm install --prefix .ci/node @stoplight/prism-cli@5, or set PRISM_BIN")
    ports = {domain: _free_port() for domain in specs}
    processes = [
        subprocess.Popen(
            [str(binary), "proxy", str(SPEC_DIR / name), upstream, "-h", "127.0.0.1", "-p", str(ports[domain])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for domain, name in specs.items()
    ]
    deadline = time.monotonic() + STARTUP_SECONDS
    while not all(_listening(p) for p in ports.values()):
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            _stop(processes)
            pytest.fail(f"Prism did not start within {STARTUP_SECONDS}s")
        time.sleep(0.2)
    return ports, processes


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def upstream():
    """One sandbox for the module (Prism needs its URL at start); each test makes its own
    subaccount, so tests don't see each other's resources."""
    parent_token = secrets.token_hex(16)
    running = TwilioSandbox(
        parent_account_sid="AC" + secrets.token_hex(16), parent_auth_token=parent_token, callback_delay=0.05
    ).start()
    running.parent_auth_token = parent_token
    yield running
    running.stop()


@pytest.fixture(scope="module")
def proxies(upstream):
    ports, processes = _start_proxies(upstream.base_url, SPECS)
    yield ports
    _stop(processes)


class ProxyHttpClient(TwilioHttpClient):
    """Sends each request to its spec's Prism proxy and records the exchange."""

    def __init__(self, ports: dict[str, int], exchanges: list[Exchange]) -> None:
        super().__init__(timeout=15)
        self.ports, self.exchanges = ports, exchanges

    def request(
        self, method, url, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        parts = urlsplit(url)
        spec = _spec_for(parts.path)
        target = urlunsplit(("http", f"127.0.0.1:{self.ports[spec]}", parts.path, parts.query, ""))
        response = super().request(method, target, params, data, headers, auth, timeout, allow_redirects)
        violations = json.loads((response.headers or {}).get("sl-violations") or "[]")
        self.exchanges.append(Exchange(spec, method, parts.path, response.status_code, response.text, violations))
        return response


@pytest.fixture
def exchanges(proxies):
    """Every exchange of the test, checked against the specs when the test ends."""
    recorded: list[Exchange] = []
    yield recorded
    assert recorded, "the test sent nothing"
    found = problems(recorded)
    assert not found, "The sandbox's answers break Twilio's spec:\n" + "\n".join(found)


@pytest.fixture
def client_for(proxies, exchanges):
    def make(username: str, password: str, account_sid: str | None = None) -> Client:
        return Client(username, password, account_sid=account_sid, http_client=ProxyHttpClient(proxies, exchanges))

    return make


@pytest.fixture
def parent(upstream, client_for):
    return client_for(upstream.parent_account_sid, upstream.parent_auth_token)


@pytest.fixture
def sub(parent):
    return parent.api.v2010.accounts.create(friendly_name=f"Contract {secrets.token_hex(3)}")


@pytest.fixture
def sub_client(client_for, sub):
    return client_for(sub.sid, sub.auth_token)


@pytest.fixture
def sender(upstream, sub):
    return upstream.seed_number(sub.sid)["phone_number"]


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- Accounts, keys and auth tokens --------------------------------------------------------------


def test_accounts(parent, sub):
    accounts = parent.api.v2010.accounts
    assert [a.sid for a in accounts.list(friendly_name=sub.friendly_name)] == [sub.sid]
    assert accounts(sub.sid).fetch().status == "active"
    assert accounts(sub.sid).update(friendly_name=sub.friendly_name + " renamed").friendly_name.endswith("renamed")
    assert accounts(sub.sid).update(status="suspended").status == "suspended"
    assert accounts(sub.sid).update(status="active").status == "active"
    closing = accounts.create(friendly_name="Contract closing")
    assert accounts(closing.sid).update(status="closed").status == "closed"
    accounts.page(page_size=1)  # a next_page_uri


def test_keys(parent, sub):
    account = parent.api.v2010.accounts(sub.sid)
    key = account.new_keys.create(friendly_name="commsportal contract")
    assert key.sid.startswith("SK") and key.secret
    assert [k.sid for k in account.keys.list()] == [key.sid]
    account.keys(key.sid).fetch()
    account.keys(key.sid).update(friendly_name="renamed")
    account.keys(key.sid).delete()


def test_auth_tokens(client_for, sub, sub_client):
    secondary = sub_client.accounts.v1.secondary_auth_token().create()
    promoted = client_for(sub.sid, secondary.secondary_auth_token).accounts.v1.auth_token_promotion().update()
    assert promoted.auth_token == secondary.secondary_auth_token
    fresh = client_for(sub.sid, promoted.auth_token)
    fresh.accounts.v1.secondary_auth_token().create()
    fresh.accounts.v1.secondary_auth_token().delete()


# --- Numbers -------------------------------------------------------------------------------------


def test_numbers(sub_client):
    available = sub_client.available_phone_numbers("US").local.list(area_code="415", limit=3)
    assert len(available) == 3
    sub_client.available_phone_numbers("US").toll_free.list(limit=2)
    numbers = sub_client.incoming_phone_numbers
    bought = numbers.create(phone_number=available[0].phone_number, sms_url="https://portal.example.com/sms")
    bare = numbers.create(area_code="646")  # no webhook URLs set
    assert {n.sid for n in numbers.list()} == {bought.sid, bare.sid}
    numbers(bare.sid).fetch()
    numbers(bought.sid).update(
        sms_url="https://portal.example.com/t/acme/sms",
        sms_method="POST",
        voice_url="https://portal.example.com/t/acme/voice",
        voice_method="POST",
        status_callback="https://portal.example.com/t/acme/status",
        status_callback_method="POST",
    )
    numbers(bare.sid).delete()


# --- Messages and Messaging Services -------------------------------------------------------------


def test_messages(sub_client, sender):
    msg = sub_client.messages.create(from_=sender, to=HANDSET, body="Hello from the contract test")
    assert msg.status == "queued"
    wait_for(lambda: sub_client.messages(msg.sid).fetch().status == "delivered")
    assert [m.sid for m in sub_client.messages.list(to=HANDSET, page_size=20)] == [msg.sid]
    assert sub_client.messages(msg.sid).update(body="").body == ""
    failed = sub_client.messages.create(from_=sender, to="+15005550012", body="x")  # fails with 30008
    wait_for(lambda: sub_client.messages(failed.sid).fetch().error_code == 30008)


def test_messaging_services(sub_client, sender):
    services = sub_client.messaging.v1.services
    service = services.create(
        friendly_name="Contract", inbound_request_url="https://portal.example.com/sms", inbound_method="POST"
    )
    assert [s.sid for s in services.list()] == [service.sid]
    number_sid = sub_client.incoming_phone_numbers.list(phone_number=sender)[0].sid
    pool = services(service.sid).phone_numbers
    pool.create(phone_number_sid=number_sid)
    assert [n.sid for n in pool.list()] == [number_sid]
    pool(number_sid).fetch()

    msg = sub_client.messages.create(messaging_service_sid=service.sid, to=HANDSET, body="via a service")
    assert (msg.status, msg.from_) == ("accepted", None)
    wait_for(lambda: sub_client.messages(msg.sid).fetch().status == "delivered")

    # After the send: the sandbox would POST status callbacks to this (unreachable) URL.
    services(service.sid).update(status_callback="https://portal.example.com/status", sticky_sender=False)
    services(service.sid).fetch()
    pool(number_sid).delete()


# --- Calls ---------------------------------------------------------------------------------------


def test_calls(upstream, sub_client, sender):
    """Calls placed through the API ring the sandbox's virtual phone: one runs its TwiML to the
    end, one waits at a Gather until the API hangs it up, one is busy; a <Dial> leaves a child."""
    calls = sub_client.calls
    said = calls.create(to=HANDSET, from_=sender, twiml="<Response><Dial>+14155550177</Dial></Response>")
    assert said.status == "queued"
    wait_for(lambda: calls(said.sid).fetch().status == "completed")
    waiting = calls.create(to=HANDSET, from_=sender, twiml="<Response><Gather/></Response>")
    wait_for(lambda: calls(waiting.sid).fetch().status == "in-progress")
    calls(waiting.sid).update(status="completed")
    wait_for(lambda: calls(waiting.sid).fetch().status == "completed")
    busy = calls.create(to="+15005550020", from_=sender, twiml="<Response/>")
    wait_for(lambda: calls(busy.sid).fetch().status == "busy")
    listed = calls.list(page_size=20)
    assert {c.sid for c in listed} >= {said.sid, waiting.sid, busy.sid}
    assert [c.direction for c in listed if c.parent_call_sid == said.sid] == ["outbound-dial"]


# --- Verify v2 -----------------------------------------------------------------------------------


def test_verify(upstream, sub_client):
    services = sub_client.verify.v2.services
    service = services.create(friendly_name="Portal login")
    services(service.sid).fetch()
    assert [s.sid for s in services.list()] == [service.sid]
    services(service.sid).update(friendly_name="Portal sign-in")

    verification = services(service.sid).verifications.create(to=HANDSET, channel="sms")
    assert verification.status == "pending"
    services(service.sid).verifications(verification.sid).fetch()
    code = upstream.verify_codes(to=HANDSET)[0]["code"]
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    checks = services(service.sid).verification_checks
    assert checks.create(to=HANDSET, code=wrong).status == "pending"
    assert checks.create(to=HANDSET, code=code).status == "approved"


# --- Errors --------------------------------------------------------------------------------------


def test_errors_have_twilio_shape(exchanges, sub_client, sender):
    cases = [
        (lambda: sub_client.messages("SM" + "0" * 32).fetch(), 404, 20404),
        (lambda: sub_client.messages.create(from_=sender, to="+15005550001", body="x"), 400, 21211),
        (lambda: sub_client.messaging.v1.services("MG" + "0" * 32).fetch(), 404, 20404),
        (lambda: sub_client.verify.v2.services("VA" + "0" * 32).fetch(), 404, 20404),
    ]
    for call, status, code in cases:
        with pytest.raises(TwilioRestException) as exc:
            call()
        assert (exc.value.status, exc.value.code) == (status, code)
    assert [e.status for e in exchanges[-len(cases) :]] == [status for _, status, _ in cases]


def test_verify_send_limit_matches_the_documented_429(exchanges, sub_client):
    """The one error status Twilio's specs document, so Prism checks its body itself."""
    service = sub_client.verify.v2.services.create(friendly_name="Limits")
    verifications = sub_client.verify.v2.services(service.sid).verifications
    for _ in range(5):
        verifications.create(to=HANDSET, channel="sms")
    with pytest.raises(TwilioRestException) as exc:
        verifications.create(to=HANDSET, channel="sms")
    assert (exc.value.status, exc.value.code) == (429, 60203)
    assert exchanges[-1].documented() is not None


# --- The guard: the harness must catch a bad answer -----------------------------------------------

_LIST = "/2010-04-01/Accounts/AC" + "a" * 32 + "/Messages.json"
BAD_PAGE = {
    "messages": [
        {
            "account_sid": "AC" + "a" * 32,
            "sid": "SM" + "b" * 32,
            "date_created": "2019-05-24T17:18:27Z",  # v2010 wants RFC 2822
            "num_segments": 1,  # the spec says string
            "status": "teleported",  # not in the enum
        }
    ],
    "uri": "not a uri",  # an allow-listed property, but not a relative v2010 path
    "first_page_uri": _LIST + "?PageSize=1&Page=0",  # the quirk, which must pass
    "next_page_uri": None,
    "previous_page_uri": None,
    "page": 0,
    "page_size": 1,
    "start": 0,
    "end": 0,
}


def test_the_harness_catches_an_answer_that_breaks_the_spec():
    """Guards the guard: Prism behind a server answering a malformed Messages page."""

    class Malformed(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            data = json.dumps(BAD_PAGE).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")  # as the sandbox
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Malformed)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        ports, processes = _start_proxies(f"http://127.0.0.1:{server.server_address[1]}", {"api": SPECS["api"]})
        try:
            recorded: list[Exchange] = []
            client = Client("AC" + "a" * 32, "x" * 32, http_client=ProxyHttpClient(ports, recorded))
            client.messages.page(page_size=1)
        finally:
            _stop(processes)
    finally:
        server.shutdown()
        server.server_close()
    found = problems(recorded)
    report = "\n".join(found)
    for expected in (
        "response.body.messages.0.num_segments: type: Response body property messages.0.num_segments must be string",
        "response.body.messages.0.status: enum: ",
        "response.body.uri: format: ",
        "body.messages[0].date_created = '2019-05-24T17:18:27Z' is not an RFC 2822 date",
        "body.messages[0].error_code is missing",
    ):
        assert expected in report, f"the harness missed {expected!r} in:\n{report}"
    assert "first_page_uri" not in report

    # And an error body that isn't Twilio's (no Prism needed: errors are checked here).
    bad_error = Exchange("api", "GET", _LIST, 404, '{"message": "Not found", "status": "404"}', [])
    report = "\n".join(problems([bad_error]))
    for expected in ("error body has no 'code'", "error body has no 'more_info'", "error 'status' is '404'"):
        assert expected in report, f"the harness missed {expected!r} in:\n{report}"
