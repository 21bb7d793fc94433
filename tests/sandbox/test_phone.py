"""The sandbox's virtual phone over HTTP: a call to a number fetches its VoiceUrl signed as
Twilio signs it, the control API presses keys, talks into a Record and hangs up, recordings
and status callbacks arrive signed; calls placed through the Calls API ring the same phone;
the HTML page drives it without scripts."""

# ruff: noqa: F811 - the fixtures imported below are used by name, as pytest does

from __future__ import annotations

import re

import pytest
import requests

# The SDK-over-HTTP fixtures of the sandbox's own tests: a sandbox, a subaccount and its client,
# a number to call from, a webhook receiver answering TwiML.
from tests.sandbox.test_sandbox import (  # noqa: F401 - fixtures
    HANDSET,
    control,
    parent,
    receiver,
    sandbox,
    sender,
    sub,
    sub_client,
    wait_for,
)

MENU = (
    '<Response><Gather numDigits="1" action="/menu?step=main"><Say voice="Polly.Joanna">'
    "Press 1 for sales, 2 for voicemail.</Say></Gather><Say>Goodbye.</Say></Response>"
)
VOICEMAIL = (
    "<Response><Say>Leave a message.</Say>"
    '<Record action="/voicemail" finishOnKey="#" recordingStatusCallback="/recording"/></Response>'
)
SALES = '<Response><Dial callerId="+14152300001"><Number>+14155550177</Number></Dial></Response>'


@pytest.fixture
def number(sandbox, sub, receiver):
    receiver.replies.update({"/voice": MENU, "/menu": VOICEMAIL, "/voicemail": "<Response><Hangup/></Response>"})
    return sandbox.seed_number(
        sub.sid, "+14152300001", VoiceUrl=receiver.url + "/voice", StatusCallback=receiver.url + "/status"
    )["phone_number"]


def call_in(sandbox, to: str, from_: str = HANDSET) -> requests.Response:
    return control(sandbox, "POST", "/sandbox/calls/incoming", data={"From": from_, "To": to})


def act(sandbox, sid: str, action: str, **data) -> dict:
    response = control(sandbox, "POST", f"/sandbox/calls/{sid}/{action}", data=data)
    assert response.status_code == 200, response.text
    return response.json()


def said(view: dict) -> list[str]:
    return [e["text"] for e in view["transcript"] if e.get("verb") == "Say"]


def test_an_incoming_call_walks_the_menu_to_voicemail_signed_like_twilio(sandbox, sub, receiver, number):
    answered = call_in(sandbox, number)
    assert answered.status_code == 201, answered.text
    call = answered.json()
    sid = call["sid"]
    assert (call["direction"], call["status"], call["waiting_for"]) == ("inbound", "in-progress", "digits")
    assert said(call) == ["Press 1 for sales, 2 for voicemail."]

    [fetch] = receiver.on("/voice")
    receiver.assert_signed(fetch, sub.auth_token)  # the owning subaccount's token
    assert {k: fetch["params"][k] for k in ("CallSid", "AccountSid", "CallStatus", "Direction", "ApiVersion")} == {
        "CallSid": sid,
        "AccountSid": sub.sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    assert (fetch["params"]["From"], fetch["params"]["Caller"]) == (HANDSET, HANDSET)
    assert (fetch["params"]["To"], fetch["params"]["Called"], fetch["params"]["ToCountry"]) == (number, number, "US")

    recording = act(sandbox, sid, "digits", digits="2")
    assert recording["waiting_for"] == "recording" and said(recording)[-1] == "Leave a message."
    [menu] = [r for r in receiver.requests if r["path"] == "/menu?step=main"]
    receiver.assert_signed(menu, sub.auth_token)
    assert (menu["params"]["Digits"], menu["params"]["CallStatus"]) == ("2", "in-progress")

    act(sandbox, sid, "speak", seconds="6")
    ended = act(sandbox, sid, "hangup")
    assert ended["status"] == "completed" and ended["waiting_for"] is None
    [recording_sid] = ended["recordings"]
    [voicemail] = receiver.on("/voicemail")
    receiver.assert_signed(voicemail, sub.auth_token)
    recording_url = f"{sandbox.base_url}/2010-04-01/Accounts/{sub.sid}/Recordings/{recording_sid}"
    assert {k: voicemail["params"][k] for k in ("RecordingSid", "RecordingUrl", "RecordingDuration", "Digits")} == {
        "RecordingSid": recording_sid,
        "RecordingUrl": recording_url,
        "RecordingDuration": "6",
        "Digits": "hangup",
    }
    [status] = wait_for(lambda: receiver.on("/recording"))
    receiver.assert_signed(status, sub.auth_token)
    assert {k: status["params"][k] for k in ("RecordingStatus", "RecordingDuration", "CallSid", "AccountSid")} == {
        "RecordingStatus": "completed",
        "RecordingDuration": "6",
        "CallSid": sid,
        "AccountSid": sub.sid,
    }
    assert status["params"]["RecordingUrl"] == recording_url and status["params"]["RecordingSource"] == "RecordVerb"
    # The number's StatusCallback hears the end of the call (and only that).
    [final] = receiver.on("/status")
    receiver.assert_signed(final, sub.auth_token)
    assert final["params"]["CallStatus"] == "completed" and int(final["params"]["CallDuration"]) >= 1

    transcript = control(sandbox, "GET", f"/sandbox/calls/{sid}").json()["transcript"]
    events = [e.get("event") or e["verb"] for e in transcript if e.get("event") != "request"]
    assert events == ["Gather", "Say", "keys", "Say", "Record", "speech", "hangup", "recording"]


def test_the_calls_api_lists_the_incoming_call_and_a_dial_leg(sandbox, sub, sub_client, receiver, number):
    sid = call_in(sandbox, number).json()["sid"]
    receiver.replies["/menu"] = SALES
    view = act(sandbox, sid, "digits", digits="1")
    assert view["status"] == "completed" and view["dialled"] == ["+14155550177"]
    dial = next(e for e in view["transcript"] if e.get("verb") == "Dial")
    assert (dial["number"], dial["caller_id"], dial["status"]) == ("+14155550177", "+14152300001", "completed")
    calls = {c.sid: c for c in sub_client.calls.list()}
    assert calls[sid].direction == "inbound" and calls[sid].status == "completed"
    assert calls[dial["call_sid"]].parent_call_sid == sid and calls[dial["call_sid"]].direction == "outbound-dial"


def test_silence_at_the_menu_falls_through_and_reject_never_answers(sandbox, sub, receiver, number):
    sid = call_in(sandbox, number).json()["sid"]
    view = act(sandbox, sid, "digits", digits="")
    assert said(view)[-1] == "Goodbye." and view["status"] == "completed"
    assert not receiver.on("/menu?step=main")

    receiver.replies["/voice"] = '<Response><Reject reason="busy"/></Response>'
    rejected = call_in(sandbox, number).json()
    assert rejected["status"] == "busy" and rejected["start_time"] is None


def test_outbound_calls_ring_the_virtual_phone(sandbox, sub, sub_client, receiver, sender):
    receiver.replies.update({"/voice": MENU, "/menu": VOICEMAIL})
    every_event = ["initiated", "ringing", "answered", "completed"]
    callback = {"status_callback": receiver.url + "/call-status", "status_callback_event": every_event}
    call = sub_client.calls.create(to=HANDSET, from_=sender, url=receiver.url + "/voice", **callback)
    view = wait_for(lambda: (v := control(sandbox, "GET", f"/sandbox/calls/{call.sid}").json())["waiting_for"] and v)
    assert view["direction"] == "outbound-api" and said(view) == ["Press 1 for sales, 2 for voicemail."]
    assert receiver.on("/voice")[0]["params"]["CallStatus"] == "in-progress"
    act(sandbox, call.sid, "digits", digits="2")
    # Twilio hangs the call up through the API: the Record still delivers nothing (silence).
    sub_client.calls(call.sid).update(status="completed")
    callbacks = wait_for(lambda: len(receiver.on("/call-status")) >= 4 and receiver.on("/call-status"))
    assert [c["params"]["CallStatus"] for c in callbacks] == ["initiated", "ringing", "in-progress", "completed"]
    final = control(sandbox, "GET", f"/sandbox/calls/{call.sid}").json()
    assert final["transcript"][-2:] == [
        {"event": "hangup", "by": "api"},
        {"event": "recording", "sid": final["recordings"][0], "status": "absent", "duration": 0},
    ]


def test_machine_detection_says_who_answered(sandbox, sub, sub_client, receiver, sender):
    call = sub_client.calls.create(
        to=HANDSET,
        from_=sender,
        url=receiver.url + "/amd",
        machine_detection="Enable",
        status_callback=receiver.url + "/amd-status",
    )
    [fetch] = wait_for(lambda: receiver.on("/amd"))
    [final] = wait_for(lambda: receiver.on("/amd-status"))
    assert fetch["params"]["AnsweredBy"] == "human" and final["params"]["AnsweredBy"] == "human"
    assert sub_client.calls(call.sid).fetch().answered_by == "human"


def test_inline_twiml_and_get_method(sandbox, sub, sub_client, receiver, sender):
    call = sub_client.calls.create(to=HANDSET, from_=sender, twiml="<Response><Say>Your code is 4 2.</Say></Response>")
    view = wait_for(
        lambda: (v := control(sandbox, "GET", f"/sandbox/calls/{call.sid}").json())["status"] == "completed" and v
    )
    assert said(view) == ["Your code is 4 2."]
    fetched = sub_client.calls.create(to=HANDSET, from_=sender, url=receiver.url + "/get-voice", method="GET")
    [fetch] = wait_for(lambda: receiver.on("/get-voice"))
    assert fetch["method"] == "GET" and fetch["params"]["CallSid"] == fetched.sid
    receiver.assert_signed(fetch, sub.auth_token)


def test_control_api_refuses_what_makes_no_sense(sandbox, sub, receiver, number):
    assert call_in(sandbox, "+14155559999").status_code == 404
    assert call_in(sandbox, number, from_="not-a-number").status_code == 400
    unencoded = f"From=+14155550123&To={number}"  # curl -d From=+1...: the '+' arrives as a space
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    placed = control(sandbox, "POST", "/sandbox/calls/incoming", data=unencoded, headers=headers)
    assert placed.status_code == 201 and placed.json()["from"] == "+14155550123"
    sid = call_in(sandbox, number).json()["sid"]
    assert control(sandbox, "POST", f"/sandbox/calls/{sid}/digits", data={"digits": "12a"}).status_code == 400
    assert control(sandbox, "POST", f"/sandbox/calls/{sid}/speak", data={"seconds": "3"}).status_code == 409
    act(sandbox, sid, "hangup")
    refused = control(sandbox, "POST", f"/sandbox/calls/{sid}/digits", data={"digits": "1"})
    assert refused.status_code == 409 and "ended" in refused.json()["message"]
    assert control(sandbox, "GET", "/sandbox/calls/CA" + "0" * 32).status_code == 404


def test_the_phone_page_drives_a_call_without_scripts(sandbox, sub, receiver, number):
    index = control(sandbox, "GET", "/sandbox/phone")
    assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in index.headers["Content-Security-Policy"]
    assert f'<option value="{number}">' in index.text
    placed = control(
        sandbox,
        "POST",
        "/sandbox/calls/incoming",
        data={"From": HANDSET, "To": number, "html": "1"},
        allow_redirects=False,
    )
    assert placed.status_code == 303
    page_url = placed.headers["Location"]
    sid = re.fullmatch(r"/sandbox/phone/(CA[0-9a-f]{32})", page_url).group(1)
    page = control(sandbox, "GET", page_url).text
    assert "Press 1 for sales, 2 for voicemail." in page and '<button name="digits" value="2">2</button>' in page
    pressed = control(
        sandbox, "POST", f"/sandbox/calls/{sid}/digits", data={"digits": "2", "html": "1"}, allow_redirects=False
    )
    assert pressed.status_code == 303 and "Speak for 5 s" in control(sandbox, "GET", page_url).text
    for html in (index.text, page, control(sandbox, "GET", page_url).text):
        assert "<script" not in html and "style=" not in html and " on" + "click" not in html
    assert control(sandbox, "GET", "/sandbox/phone.css").headers["Content-Type"].startswith("text/css")
