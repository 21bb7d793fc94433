"""The Twilio sandbox, driven by the real twilio-python SDK over HTTP.

Every SDK domain's `base_url` is pointed at the sandbox, so these tests also pin the wire
contract (paths, form fields, error JSON, pagination) the portal relies on.
"""

from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import phonenumbers
import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from sandbox.server import TwilioSandbox

PARENT_SID = "AC" + "a1" * 16
PARENT_TOKEN = "f0" * 16
HANDSET = "+14155550123"


def make_client(sandbox: TwilioSandbox, username: str, password: str, account_sid=None) -> Client:
    """A real SDK client whose every product domain talks to the sandbox."""
    client = Client(username, password, account_sid=account_sid)
    for domain in ("api", "verify", "messaging", "accounts"):
        getattr(client, domain).base_url = sandbox.base_url
    return client


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


class Receiver:
    """A tiny webhook endpoint recording what the sandbox POSTs (and answering TwiML)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.replies: dict[str, str] = {}  # path (without query) -> the TwiML it answers
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.do_POST()

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                path, _, query = self.path.partition("?")
                receiver.requests.append(
                    {
                        "path": path if self.command == "GET" else self.path,
                        "method": self.command,
                        "query": query,
                        "params": dict(
                            parse_qsl(body or (query if self.command == "GET" else ""), keep_blank_values=True)
                        ),
                        "signature": self.headers.get("X-Twilio-Signature"),
                    }
                )
                reply = receiver.replies.get(path, "<Response/>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def on(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def assert_signed(self, request: dict, token: str) -> None:
        validator = RequestValidator(token)
        if request["method"] == "GET":  # GET: the parameters are in the signed URL
            url, params = f"{self.url}{request['path']}?{request['query']}", {}
        else:
            url, params = self.url + request["path"], request["params"]
        assert validator.validate(url, params, request["signature"])
        assert not RequestValidator("wrong" + token).validate(url, params, request["signature"])


@pytest.fixture
def sandbox():
    sb = TwilioSandbox(parent_account_sid=PARENT_SID, parent_auth_token=PARENT_TOKEN, callback_delay=0.05).start()
    yield sb
    sb.stop()


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def parent(sandbox):
    return make_client(sandbox, PARENT_SID, PARENT_TOKEN)


@pytest.fixture
def sub(parent):
    return parent.api.v2010.accounts.create(friendly_name="Acme Dental")


@pytest.fixture
def sub_client(sandbox, sub):
    return make_client(sandbox, sub.sid, sub.auth_token)


@pytest.fixture
def sender(sandbox, sub):
    return sandbox.seed_number(sub.sid, "+14152300001")["phone_number"]


def control(sandbox, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, sandbox.base_url + path, timeout=5, **kwargs)


# ------------------------------------------------------------------------ accounts and keys


def test_subaccount_create_list_and_status_changes(sandbox, parent, sub):
    assert sub.sid.startswith("AC") and len(sub.sid) == 34
    assert sub.status == "active" and len(sub.auth_token) == 32
    parent.api.v2010.accounts.create(friendly_name="Other tenant")

    found = parent.api.v2010.accounts.list(friendly_name="Acme Dental")
    assert [a.sid for a in found] == [sub.sid]

    suspended = parent.api.v2010.accounts(sub.sid).update(status="suspended")
    assert suspended.status == "suspended"
    assert [a.sid for a in parent.api.v2010.accounts.list(status="suspended")] == [sub.sid]
    # A suspended account's own credentials stop working; its parent can't send for it.
    with pytest.raises(TwilioRestException) as exc:
        make_client(sandbox, sub.sid, sub.auth_token).api.v2010.accounts(sub.sid).fetch()
    assert (exc.value.status, exc.value.code) == (401, 20003)
    with pytest.raises(TwilioRestException) as exc:
        parent.api.v2010.accounts(sub.sid).messages.create(to=HANDSET, from_="+15005550006", body="x")
    assert exc.value.code == 10001

    assert parent.api.v2010.accounts(sub.sid).update(status="active").status == "active"


def test_closing_releases_numbers_and_is_irreversible(sandbox, parent, sub, sender):
    parent.api.v2010.accounts(sub.sid).update(status="closed")
    assert parent.api.v2010.accounts(sub.sid).incoming_phone_numbers.list() == []
    with pytest.raises(TwilioRestException) as exc:
        parent.api.v2010.accounts(sub.sid).update(status="active")
    assert exc.value.code == 21100
    assert parent.api.v2010.accounts(sub.sid).fetch().status == "closed"


def test_twilio_suspended_account_status_cannot_change(sandbox, parent, sub):
    flagged = control(sandbox, "POST", f"/sandbox/accounts/{sub.sid}", data={"twilio_suspended": "true"})
    assert flagged.json()["status"] == "suspended"
    with pytest.raises(TwilioRestException) as exc:
        parent.api.v2010.accounts(sub.sid).update(status="active")
    assert (exc.value.status, exc.value.code) == (400, 21478)


def test_subaccount_cannot_reach_another_subaccount(sandbox, parent, sub, sub_client):
    other = parent.api.v2010.accounts.create(friendly_name="Globex")
    with pytest.raises(TwilioRestException) as exc:
        sub_client.api.v2010.accounts(other.sid).incoming_phone_numbers.create(area_code="415")
    assert (exc.value.status, exc.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException):
        sub_client.api.v2010.accounts(PARENT_SID).fetch()


def test_api_key_create_authenticate_and_delete(sandbox, parent, sub, sender):
    key = parent.api.v2010.accounts(sub.sid).new_keys.create(friendly_name="portal")
    assert key.sid.startswith("SK") and len(key.secret) == 32

    key_client = make_client(sandbox, key.sid, key.secret, account_sid=sub.sid)
    sent = key_client.messages.create(to=HANDSET, from_=sender, body="via key")
    assert sent.account_sid == sub.sid
    listed = parent.api.v2010.accounts(sub.sid).keys.list()
    assert [k.sid for k in listed] == [key.sid]
    # Like a Twilio standard key: no key management with a key, no other account.
    with pytest.raises(TwilioRestException) as exc:
        key_client.api.v2010.accounts(sub.sid).new_keys.create()
    assert exc.value.status == 403
    with pytest.raises(TwilioRestException) as exc:
        make_client(sandbox, key.sid, key.secret, account_sid=PARENT_SID).messages.create(
            to=HANDSET, from_="+15005550006", body="x"
        )
    assert exc.value.status == 404

    parent.api.v2010.accounts(sub.sid).keys(key.sid).delete()
    with pytest.raises(TwilioRestException) as exc:
        key_client.api.v2010.accounts(sub.sid).fetch()
    assert (exc.value.status, exc.value.code) == (401, 20003)


def test_bad_credentials_answer_401(sandbox):
    for username, password in [(PARENT_SID, "not-the-token"), ("SK" + "0" * 32, "secret")]:
        with pytest.raises(TwilioRestException) as exc:
            make_client(sandbox, username, password).api.v2010.accounts(PARENT_SID).fetch()
        assert (exc.value.status, exc.value.code) == (401, 20003)
    raw = control(sandbox, "GET", "/2010-04-01/Accounts.json")
    assert raw.status_code == 401
    assert raw.json()["more_info"] == "https://www.twilio.com/docs/errors/20003"


def test_unknown_account_is_registered_only_when_allowed(sandbox):
    new_sid, token = "AC" + "c3" * 16, "anything"
    client = make_client(sandbox, new_sid, token)
    assert client.api.v2010.accounts(new_sid).fetch().status == "active"
    with pytest.raises(TwilioRestException):  # the token is now bound to that account
        make_client(sandbox, new_sid, "another").api.v2010.accounts(new_sid).fetch()

    strict = TwilioSandbox(
        parent_account_sid=PARENT_SID, parent_auth_token=PARENT_TOKEN, auto_register_accounts=False
    ).start()
    try:
        with pytest.raises(TwilioRestException) as exc:
            make_client(strict, "AC" + "d4" * 16, "x").api.v2010.accounts(PARENT_SID).fetch()
        assert exc.value.code == 20003
    finally:
        strict.stop()


def test_secondary_auth_token_and_promotion(sandbox, sub, sub_client):
    secondary = sub_client.accounts.v1.secondary_auth_token().create()
    token = secondary.secondary_auth_token
    assert secondary.account_sid == sub.sid and token != sub.auth_token
    # Both tokens authenticate while the secondary exists.
    assert make_client(sandbox, sub.sid, token).api.v2010.accounts(sub.sid).fetch().sid == sub.sid
    assert sub_client.api.v2010.accounts(sub.sid).fetch().sid == sub.sid

    promoted = make_client(sandbox, sub.sid, token).accounts.v1.auth_token_promotion().update()
    assert promoted.auth_token == token
    with pytest.raises(TwilioRestException) as exc:
        sub_client.api.v2010.accounts(sub.sid).fetch()
    assert exc.value.status == 401

    fresh = make_client(sandbox, sub.sid, token)
    fresh.accounts.v1.secondary_auth_token().create()
    fresh.accounts.v1.secondary_auth_token().delete()
    with pytest.raises(TwilioRestException):
        fresh.accounts.v1.auth_token_promotion().update()


# ------------------------------------------------------------------------ numbers


def test_seeded_numbers_paginate_across_pages(sandbox, parent, sub):
    for i in range(5):
        seeded = control(
            sandbox,
            "POST",
            f"/sandbox/accounts/{sub.sid}/numbers",
            data={"PhoneNumber": f"+1415230000{i}", "SmsUrl": "https://portal.example/sms"},
        )
        assert seeded.status_code == 201
    numbers = parent.api.v2010.accounts(sub.sid).incoming_phone_numbers

    first = numbers.page(page_size=2)
    assert len(list(first)) == 2 and first.next_page_url
    listed = numbers.list(page_size=2)
    assert sorted(n.phone_number for n in listed) == [f"+1415230000{i}" for i in range(5)]
    assert {n.sms_url for n in listed} == {"https://portal.example/sms"}
    assert listed[0].capabilities["sms"] is True

    only = numbers.list(phone_number="+14152300003")
    assert [n.phone_number for n in only] == ["+14152300003"]
    updated = numbers(only[0].sid).update(voice_url="https://portal.example/voice")
    assert updated.voice_url == "https://portal.example/voice"
    numbers(only[0].sid).delete()
    assert len(numbers.list()) == 4


def test_available_numbers_are_valid_and_purchasable(sub_client, sub):
    available = sub_client.available_phone_numbers("US").local.list(area_code="212", limit=5)
    assert len(available) == 5
    for number in available:
        assert number.phone_number.startswith("+1212")
        assert phonenumbers.is_valid_number(phonenumbers.parse(number.phone_number))
    toll_free = sub_client.available_phone_numbers("US").toll_free.list(limit=2)
    assert all(n.phone_number[2:5] in {"833", "844", "855", "866", "877", "888"} for n in toll_free)

    bought = sub_client.incoming_phone_numbers.create(
        phone_number=available[0].phone_number, sms_url="https://portal.example/sms"
    )
    assert bought.sid.startswith("PN") and bought.account_sid == sub.sid
    again = sub_client.available_phone_numbers("US").local.list(area_code="212", limit=5)
    assert available[0].phone_number not in {n.phone_number for n in again}
    with pytest.raises(TwilioRestException) as exc:
        sub_client.incoming_phone_numbers.create(phone_number=available[0].phone_number)
    assert exc.value.code == 21422
    by_area = sub_client.incoming_phone_numbers.create(area_code="646")
    assert by_area.phone_number.startswith("+1646")


# ------------------------------------------------------------------------ messages


def test_message_status_callbacks_are_signed_like_twilio(sandbox, sub, sub_client, sender, receiver):
    msg = sub_client.messages.create(to=HANDSET, from_=sender, body="Hello", status_callback=receiver.url + "/status")
    assert msg.sid.startswith("SM") and msg.status == "queued"
    assert (msg.direction, msg.num_segments, msg.price, msg.error_code) == (
        "outbound-api",
        "1",
        None,
        None,
    )

    callbacks = wait_for(lambda: len(receiver.on("/status")) >= 2 and receiver.on("/status"))
    assert [c["params"]["MessageStatus"] for c in callbacks] == ["sent", "delivered"]
    for callback in callbacks:
        receiver.assert_signed(callback, sub.auth_token)
        params = callback["params"]
        assert params["MessageSid"] == params["SmsSid"] == msg.sid
        assert (params["AccountSid"], params["From"], params["To"]) == (sub.sid, sender, HANDSET)
        assert params["ApiVersion"] == "2010-04-01" and "ErrorCode" not in params
    assert sub_client.messages(msg.sid).fetch().status == "delivered"


@pytest.mark.parametrize(
    ("to", "statuses", "error_code"),
    [
        ("+15005550010", ["sent", "undelivered"], "30003"),
        ("+15005550011", ["sent", "undelivered"], "30006"),
        ("+15005550012", ["failed"], "30008"),
        ("+15005550013", ["sent", "undelivered"], "21610"),
    ],
)
def test_async_failure_outcomes(sub_client, sender, receiver, to, statuses, error_code):
    msg = sub_client.messages.create(to=to, from_=sender, body="x", status_callback=receiver.url + "/cb")
    callbacks = wait_for(lambda: len(receiver.on("/cb")) >= len(statuses) and receiver.on("/cb"))
    assert [c["params"]["MessageStatus"] for c in callbacks] == statuses
    assert callbacks[-1]["params"]["ErrorCode"] == error_code
    fetched = sub_client.messages(msg.sid).fetch()
    assert (fetched.status, str(fetched.error_code)) == (statuses[-1], error_code)


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21211),
        ("+15005550002", 21612),
        ("+15005550003", 21408),
        ("+15005550004", 21610),
        ("+15005550009", 21614),
        ("415-555-0123", 21211),
        ("", 21604),
    ],
)
def test_synchronous_send_errors(sub_client, sender, to, code):
    with pytest.raises(TwilioRestException) as exc:
        sub_client.messages.create(to=to, from_=sender, body="x")
    assert (exc.value.status, exc.value.code) == (400, code)


def test_sender_must_be_given_and_owned(sandbox, parent, sub_client):
    with pytest.raises(TwilioRestException) as exc:
        sub_client.messages.create(to=HANDSET, body="x")
    assert exc.value.code == 21603
    other = parent.api.v2010.accounts.create(friendly_name="Globex")
    foreign = sandbox.seed_number(other.sid, "+14152309999")["phone_number"]
    with pytest.raises(TwilioRestException) as exc:
        sub_client.messages.create(to=HANDSET, from_=foreign, body="x")
    assert exc.value.code == 21606


def test_fault_injection_429_then_success(sandbox, sub_client, sender):
    added = control(
        sandbox,
        "POST",
        "/sandbox/faults",
        json={"path_contains": "Messages.json", "status": 429, "code": 20429, "count": 2},
    )
    assert added.status_code == 201
    for _ in range(2):
        with pytest.raises(TwilioRestException) as exc:
            sub_client.messages.create(to=HANDSET, from_=sender, body="retry me")
        assert (exc.value.status, exc.value.code) == (429, 20429)
    assert sub_client.messages.create(to=HANDSET, from_=sender, body="retry me").status == "queued"
    assert len(control(sandbox, "GET", "/sandbox/messages").json()) == 1


def test_accept_then_drop_creates_the_message_but_sends_no_response(sandbox, sub_client, sender):
    control(
        sandbox,
        "POST",
        "/sandbox/faults",
        data={"path_contains": "Messages.json", "mode": "accept_then_drop", "method": "POST"},
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        sub_client.messages.create(to=HANDSET, from_=sender, body="did it go?")
    stored = control(sandbox, "GET", "/sandbox/messages", params={"to": HANDSET}).json()
    assert [m["body"] for m in stored] == ["did it go?"]
    # The fault is used up: the next request gets an answer again.
    assert sub_client.messages.list(to=HANDSET)[0].sid == stored[0]["sid"]


def _create_raw(sandbox, sub, sender, to: str, *, timeout: float = 5) -> requests.Response:
    return requests.post(
        f"{sandbox.base_url}/2010-04-01/Accounts/{sub.sid}/Messages.json",
        data={"To": to, "From": sender, "Body": f"hello {to}"},
        auth=(sub.sid, sub.auth_token),
        timeout=timeout,
    )


def test_fault_kinds_over_http_scoped_to_one_recipient(sandbox, sub, sender):
    other = "+14155550199"
    for kind in ("500", "429"):
        added = control(sandbox, "POST", "/sandbox/faults", json={"kind": kind, "count": 1, "to": HANDSET})
        assert added.status_code == 201 and added.json()["to"] == HANDSET
    assert _create_raw(sandbox, sub, sender, other).status_code == 201  # another recipient: untouched
    first, second = _create_raw(sandbox, sub, sender, HANDSET), _create_raw(sandbox, sub, sender, HANDSET)
    assert (first.status_code, first.json()["code"]) == (500, 20500)
    assert (second.status_code, second.json()["code"], second.headers["Retry-After"]) == (429, 20429, "1")
    assert _create_raw(sandbox, sub, sender, HANDSET).status_code == 201
    injected = control(sandbox, "GET", "/sandbox/faults/injected").json()
    assert [(i["status"], i["to"]) for i in injected] == [(500, HANDSET), (429, HANDSET)]
    assert injected[0]["at"] <= injected[1]["at"]


def test_fault_for_a_duration_fails_every_match_until_it_ends(sandbox, sub, sender):
    control(sandbox, "POST", "/sandbox/faults", json={"kind": "500", "seconds": 0.5, "path_contains": "Messages"})
    assert [_create_raw(sandbox, sub, sender, HANDSET).status_code for _ in range(3)] == [500] * 3
    time.sleep(0.6)
    assert _create_raw(sandbox, sub, sender, HANDSET).status_code == 201
    assert control(sandbox, "GET", "/sandbox/faults").json() == []


@pytest.mark.parametrize(("accept", "stored"), [(False, 0), (True, 1)])
def test_timeout_fault_holds_the_request_unanswered(sandbox, sub, sender, accept, stored):
    fault = {"kind": "timeout", "stall_seconds": 2, "accept": accept, "method": "POST"}
    assert control(sandbox, "POST", "/sandbox/faults", json=fault).status_code == 201
    with pytest.raises(requests.exceptions.ReadTimeout):
        _create_raw(sandbox, sub, sender, HANDSET, timeout=0.5)
    assert len(control(sandbox, "GET", "/sandbox/messages", params={"to": HANDSET}).json()) == stored
    assert _create_raw(sandbox, sub, sender, HANDSET).status_code == 201  # used up


def test_bad_fault_is_refused(sandbox):
    for body in ({"kind": "404"}, {"kind": "500", "seconds": "soon"}, {"mode": "explode"}):
        assert control(sandbox, "POST", "/sandbox/faults", json=body).status_code == 400


def test_message_list_filters(sub_client, sender):
    first = sub_client.messages.create(to=HANDSET, from_=sender, body="one")
    sub_client.messages.create(to="+14155550199", from_=sender, body="two")
    assert [m.sid for m in sub_client.messages.list(to=HANDSET)] == [first.sid]
    assert len(sub_client.messages.list(from_=sender, page_size=1)) == 2

    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert len(sub_client.messages.list(date_sent_after=hour_ago)) == 2
    assert sub_client.messages.list(date_sent_after=hour_ago + timedelta(days=1)) == []
    assert len(sub_client.messages.list(date_sent_before=hour_ago + timedelta(days=1))) == 2
    assert len(sub_client.messages.list(date_sent=datetime.now(UTC).date())) == 2


def test_redact_and_delete_a_finished_message(sub_client, sender):
    msg = sub_client.messages.create(to=HANDSET, from_=sender, body="secret")
    with pytest.raises(TwilioRestException) as exc:  # still in flight
        sub_client.messages(msg.sid).delete()
    assert exc.value.code == 20009
    wait_for(lambda: sub_client.messages(msg.sid).fetch().status == "delivered")
    assert sub_client.messages(msg.sid).update(body="").body == ""
    assert sub_client.messages(msg.sid).delete() is True
    with pytest.raises(TwilioRestException) as exc:
        sub_client.messages(msg.sid).fetch()
    assert exc.value.status == 404


def test_messaging_service_sends_from_its_pool(sandbox, sub, sub_client, sender, receiver):
    service = sub_client.messaging.v1.services.create(
        friendly_name="Reminders", status_callback=receiver.url + "/svc-status"
    )
    assert service.sid.startswith("MG")
    with pytest.raises(TwilioRestException) as exc:
        sub_client.messages.create(to=HANDSET, messaging_service_sid=service.sid, body="x")
    assert exc.value.code == 21703

    number_sid = sub_client.incoming_phone_numbers.list(phone_number=sender)[0].sid
    sub_client.messaging.v1.services(service.sid).phone_numbers.create(phone_number_sid=number_sid)
    pool = sub_client.messaging.v1.services(service.sid).phone_numbers.list()
    assert [p.phone_number for p in pool] == [sender]

    msg = sub_client.messages.create(to=HANDSET, messaging_service_sid=service.sid, body="hi")
    assert (msg.status, msg.from_, msg.messaging_service_sid) == ("accepted", None, service.sid)
    callbacks = wait_for(lambda: len(receiver.on("/svc-status")) >= 3 and receiver.on("/svc-status"))
    assert [c["params"]["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
    assert {c["params"]["From"] for c in callbacks} == {sender}
    assert callbacks[0]["params"]["MessagingServiceSid"] == service.sid
    receiver.assert_signed(callbacks[0], sub.auth_token)


def test_inbound_webhook_is_signed_and_stop_blocks_later_sends(sandbox, sub, sub_client, receiver):
    number = sandbox.seed_number(sub.sid, "+14152300042", SmsUrl=receiver.url + "/inbound")
    result = control(
        sandbox,
        "POST",
        "/sandbox/inbound",
        data={"From": HANDSET, "To": number["phone_number"], "Body": "STOP"},
    ).json()
    assert result["status_code"] == 200 and result["body"] == "<Response/>"
    [inbound] = receiver.on("/inbound")
    receiver.assert_signed(inbound, sub.auth_token)
    assert inbound["params"]["MessageSid"] == result["message_sid"]
    assert (inbound["params"]["AccountSid"], inbound["params"]["Body"]) == (sub.sid, "STOP")
    assert inbound["params"]["NumMedia"] == "0"

    with pytest.raises(TwilioRestException) as exc:
        sub_client.messages.create(to=HANDSET, from_=number["phone_number"], body="still there?")
    assert exc.value.code == 21610
    control(
        sandbox,
        "POST",
        "/sandbox/inbound",
        data={"From": HANDSET, "To": number["phone_number"], "Body": "start"},
    )
    assert sub_client.messages.create(to=HANDSET, from_=number["phone_number"], body="hi").sid


# ------------------------------------------------------------------------ calls


def test_call_progress_callbacks_and_twiml_fetch(sub, sub_client, sender, receiver):
    call = sub_client.calls.create(
        to=HANDSET,
        from_=sender,
        url=receiver.url + "/twiml",
        status_callback=receiver.url + "/call-status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    assert call.sid.startswith("CA") and call.status == "queued"
    callbacks = wait_for(lambda: len(receiver.on("/call-status")) >= 4 and receiver.on("/call-status"))
    assert [c["params"]["CallStatus"] for c in callbacks] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert int(callbacks[-1]["params"]["CallDuration"]) >= 1
    for callback in callbacks:
        receiver.assert_signed(callback, sub.auth_token)
    [twiml_fetch] = receiver.on("/twiml")
    assert twiml_fetch["params"]["CallSid"] == call.sid
    receiver.assert_signed(twiml_fetch, sub.auth_token)
    fetched = sub_client.calls(call.sid).fetch()
    assert fetched.status == "completed" and [c.sid for c in sub_client.calls.list()] == [call.sid]


# ------------------------------------------------------------------------ Verify


def test_verify_send_check_and_approve(sandbox, sub_client):
    service = sub_client.verify.v2.services.create(friendly_name="Portal login")
    assert service.sid.startswith("VA") and service.code_length == 6
    verification = sub_client.verify.v2.services(service.sid).verifications.create(to=HANDSET, channel="sms")
    assert verification.status == "pending" and verification.sid.startswith("VE")

    codes = control(sandbox, "GET", "/sandbox/verify-codes", params={"to": HANDSET}).json()
    assert codes[0]["verification_sid"] == verification.sid and len(codes[0]["code"]) == 6
    checks = sub_client.verify.v2.services(service.sid).verification_checks
    wrong = str((int(codes[0]["code"]) + 1) % 1_000_000).zfill(6)
    assert checks.create(to=HANDSET, code=wrong).status == "pending"
    approved = checks.create(to=HANDSET, code=codes[0]["code"])
    assert (approved.status, approved.valid) == ("approved", True)
    with pytest.raises(TwilioRestException) as exc:  # an approved verification is gone
        checks.create(to=HANDSET, code=codes[0]["code"])
    assert exc.value.status == 404


def test_verify_limits_checks_and_sends(sandbox, sub_client):
    service = sub_client.verify.v2.services.create(friendly_name="Limits")
    verifications = sub_client.verify.v2.services(service.sid).verifications
    verifications.create(to=HANDSET, channel="sms")
    code = sandbox.verify_codes(HANDSET)[0]["code"]
    checks = sub_client.verify.v2.services(service.sid).verification_checks
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert checks.create(to=HANDSET, code=wrong).status == "pending"
    with pytest.raises(TwilioRestException) as exc:
        checks.create(to=HANDSET, code=code)
    assert exc.value.code == 60202

    other = "+14155550188"
    for _ in range(5):
        verifications.create(to=other, channel="sms")
    # Resends within the window reuse the pending verification and its code.
    assert len({c["code"] for c in sandbox.verify_codes(other)}) == 1
    with pytest.raises(TwilioRestException) as exc:
        verifications.create(to=other, channel="sms")
    assert (exc.value.status, exc.value.code) == (429, 60203)
    with pytest.raises(TwilioRestException) as exc:
        verifications.create(to="not-a-number", channel="sms")
    assert exc.value.code == 60200


def test_verify_services_list_uses_meta_paging(sub_client):
    for i in range(3):
        sub_client.verify.v2.services.create(friendly_name=f"svc {i}")
    page = sub_client.verify.v2.services.page(page_size=2)
    assert page.next_page_url and urlsplit(page.next_page_url).path == "/v2/Services"
    assert len(sub_client.verify.v2.services.list(page_size=2)) == 3


# ------------------------------------------------------------------------ command


def test_management_command_prints_base_url_and_masks_token(monkeypatch):
    from django.conf import settings as django_settings
    from django.core.management import call_command
    from django.test import override_settings

    if not django_settings.configured:
        pytest.skip("Django settings are not configured")
    monkeypatch.setattr(TwilioSandbox, "serve_forever", lambda self: self.stop())
    out = io.StringIO()
    with override_settings(TWILIO_ACCOUNT_SID=PARENT_SID, TWILIO_AUTH_TOKEN=PARENT_TOKEN):
        call_command("twilio_sandbox", "--port", "0", stdout=out)
    text = out.getvalue()
    assert "TWILIO_API_BASE_URL=http://127.0.0.1:" in text
    assert PARENT_TOKEN not in text and PARENT_TOKEN[-4:] in text
