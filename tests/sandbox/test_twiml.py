"""The sandbox's TwiML interpreter (sandbox/twiml.py), verb by verb, over a recorded `Line`:
what the caller hears, what is requested where with which parameters, when the call waits and
how it ends. The HTTP side (signatures, callbacks) is tests/sandbox/test_phone.py."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.twiml import APPLICATION_ERROR, CallSession, TwimlError, parse_twiml

BASE = "https://portal.example.com/webhooks/twilio/voice/"


class FakeLine:
    """A `twiml.Line` that answers requests from a {url: TwiML} map and records everything."""

    def __init__(self, documents: dict[str, str] | None = None, dial_outcome: str = "completed"):
        self.documents = documents or {}
        self.requests: list[dict[str, Any]] = []
        self.events: list[tuple] = []
        self.recordings: dict[str, dict[str, Any]] = {}
        self.dial_outcome = dial_outcome

    def request(self, kind, url, method, extra):
        self.requests.append({"kind": kind, "url": url, "method": method, **extra})
        if url not in self.documents:
            return 404, "Not found"
        return 200, self.documents[url]

    def answer(self):
        self.events.append(("answer",))

    def end(self, status):
        self.events.append(("end", status))

    def recording_start(self):
        sid = f"RE{len(self.recordings):032d}"
        self.recordings[sid] = {"status": "in-progress"}
        return {"sid": sid, "url": f"https://sandbox.test/Recordings/{sid}"}

    def recording_finish(self, sid, status, duration):
        self.recordings[sid].update(status=status, duration=duration)

    def recording_callback(self, sid, url, method):
        self.events.append(("recording-callback", sid, url, method, self.recordings[sid]["status"]))

    def dial(self, target, caller_id):
        self.events.append(("dial", target, caller_id))
        return {
            "status": self.dial_outcome,
            "sid": "CA" + "d" * 32,
            "duration": 1 if self.dial_outcome == "completed" else 0,
        }

    def caller_id(self):
        return "+14155550123"


def run(twiml: str, documents: dict[str, str] | None = None, **line_options) -> tuple[CallSession, FakeLine]:
    """An inbound call whose voice URL answers `twiml`."""
    line = FakeLine({BASE + "inbound/": twiml, **(documents or {})}, **line_options)
    session = CallSession(line)
    session.start(BASE + "inbound/")
    return session, line


def spoken(session: CallSession) -> list[str]:
    return [e["text"] for e in session.transcript if e.get("verb") == "Say"]


def response(*verbs: str) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"


# ------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "twiml, code",
    [
        ("this is not xml", 12100),
        ("<Reply><Say>Hi</Say></Reply>", 12100),
        (response("<Speak>Hi</Speak>"), 12200),
        (response("<Gather><Hangup/></Gather>"), 12200),
        (response('<Gather numDigits="one"/>'), 12200),
        (response('<Gather finishOnKey="A"/>'), 12200),
        (response('<Gather finishOnKey="#*"/>'), 12200),
        (response('<Gather method="PUT"/>'), 12200),
        (response('<Record recordingStatusCallbackEvent="done"/>'), 12200),
        (response('<Reject reason="later"/>'), 12200),
        (response("<Redirect/>"), 12200),
        (response("<Dial><Conference>room</Conference></Dial>"), 12200),
        (response("<Dial/>"), 12200),
        (response("<Say><Play>x</Play></Say>"), 12200),
    ],
)
def test_parse_refuses_what_twilio_refuses(twiml, code):
    with pytest.raises(TwimlError) as exc:
        parse_twiml(twiml)
    assert exc.value.code == code


def test_parse_accepts_every_verb():
    verbs = parse_twiml(
        response(
            '<Say voice="Polly.Joanna" language="en-US">Hi <break time="1s"/> there</Say>',
            '<Play loop="2">https://cdn.example.com/a.mp3</Play>',
            '<Pause length="2"/>',
            '<Gather input="dtmf" numDigits="1" timeout="5" action="/g" method="POST" finishOnKey="">'
            "<Say>Menu</Say><Play>https://cdn.example.com/m.mp3</Play><Pause/></Gather>",
            '<Dial callerId="+14155550100" action="/d"><Number>+14155550111</Number></Dial>',
            '<Record action="/r" maxLength="120" finishOnKey="#" recordingStatusCallback="/rs"'
            ' recordingStatusCallbackEvent="in-progress completed absent"/>',
            "<Redirect method='GET'>/next</Redirect>",
            "<Hangup/>",
            '<Reject reason="busy"/>',
        )
    )
    assert [v.tag for v in verbs] == [
        "Say",
        "Play",
        "Pause",
        "Gather",
        "Dial",
        "Record",
        "Redirect",
        "Hangup",
        "Reject",
    ]


# ------------------------------------------------------------------------ Say, Play, Pause, end


def test_say_play_pause_then_the_document_ends_the_call():
    session, line = run(
        response(
            '<Say voice="Polly.Joanna" language="en-GB" loop="2">Hello <emphasis>there</emphasis></Say>',
            '<Play digits="ww1">https://cdn.example.com/hold.mp3</Play>',
            '<Pause length="3"/>',
        )
    )
    said = [e for e in session.transcript if "verb" in e]
    assert said == [
        {"verb": "Say", "text": "Hello there", "voice": "Polly.Joanna", "language": "en-GB", "loop": 2},
        {"verb": "Play", "url": "https://cdn.example.com/hold.mp3", "loop": 1, "digits": "ww1"},
        {"verb": "Pause", "seconds": 3},
    ]
    assert line.events == [("answer",), ("end", "completed")]
    assert session.ended == "completed" and session.waiting is None
    assert line.requests == [{"kind": "voice-url", "url": BASE + "inbound/", "method": "POST"}]


def test_an_empty_response_answers_and_hangs_up():
    session, line = run("<Response/>")
    assert session.answered and line.events == [("answer",), ("end", "completed")]


# ------------------------------------------------------------------------ Gather


MENU = response(
    '<Gather numDigits="1" action="../gather/?step=menu" method="POST">'
    "<Say>Press 1 for sales, 2 to leave a message.</Say></Gather>",
    "<Say>We did not get your choice.</Say>",
    "<Hangup/>",
)


def test_gather_waits_then_posts_the_key_to_its_action_resolved_against_the_document():
    session, line = run(MENU, {BASE + "gather/?step=menu": response("<Say>Sales.</Say>")})
    assert session.waiting is not None and session.waiting.verb.tag == "Gather" and not session.ended
    assert session.transcript[-1] == {
        "verb": "Say",
        "text": "Press 1 for sales, 2 to leave a message.",
        "voice": "",
        "language": "en-US",
        "loop": 1,
        "within": "Gather",
    }
    session.press("15")  # numDigits=1: the second key is not part of this Gather
    action = line.requests[-1]
    assert action == {
        "kind": "gather-action",
        "url": BASE + "gather/?step=menu",
        "method": "POST",
        "Digits": "1",
        "FinishedOnKey": "",
        "msg": "Gather End",
    }
    assert spoken(session)[-1] == "Sales." and session.ended == "completed"
    assert "We did not get your choice." not in spoken(session)  # the rest of the first document is gone


def test_gather_timeout_without_input_falls_through_to_the_next_verb():
    session, line = run(MENU)
    session.timeout()
    assert [r["kind"] for r in line.requests] == ["voice-url"]  # the action is not requested
    assert spoken(session)[-1] == "We did not get your choice." and session.ended == "completed"
    assert {"event": "timeout"} in session.transcript


def test_gather_only_the_finish_key_is_no_input():
    session, line = run(MENU.replace('numDigits="1" ', ""))
    session.press("#")
    assert [r["kind"] for r in line.requests] == ["voice-url"]
    assert spoken(session)[-1] == "We did not get your choice."


def test_gather_action_on_empty_result_posts_empty_digits():
    session, line = run(
        response('<Gather actionOnEmptyResult="true" action="/empty"/>', "<Say>never</Say>"),
        {"https://portal.example.com/empty": response("<Hangup/>")},
    )
    session.press("")
    assert line.requests[-1]["url"] == "https://portal.example.com/empty" and line.requests[-1]["Digits"] == ""
    assert "never" not in spoken(session)


def test_gather_finish_on_key_and_default_action_is_the_document_url():
    twiml = response('<Gather method="GET"/>')
    session, line = run(twiml)
    session.press("42#9")
    assert line.requests[-1] == {
        "kind": "gather-action",
        "url": BASE + "inbound/",
        "method": "GET",
        "Digits": "42",
        "FinishedOnKey": "#",
        "msg": "Gather End",
    }
    assert session.waiting is not None  # the same document again: it gathers again


def test_gather_digits_without_the_finish_key_are_submitted_at_the_timeout():
    session, line = run(
        response('<Gather finishOnKey="" action="/a"/>'), {"https://portal.example.com/a": "<Response/>"}
    )
    session.press("123#")
    assert (line.requests[-1]["Digits"], line.requests[-1]["FinishedOnKey"]) == ("123#", "")


# ------------------------------------------------------------------------ Record


VOICEMAIL = response(
    "<Say>Leave a message after the beep.</Say>",
    '<Record action="/vm/done" maxLength="60" finishOnKey="#" recordingStatusCallback="/vm/status"/>',
    "<Say>We did not hear anything.</Say>",
)


def test_record_hangup_still_posts_the_recording_to_action_and_status_callback():
    session, line = run(VOICEMAIL, {"https://portal.example.com/vm/done": response("<Say>Thanks</Say>")})
    assert session.waiting.verb.tag == "Record"
    [sid] = line.recordings
    session.speak(7)
    session.hangup()
    action = line.requests[-1]
    assert action == {
        "kind": "record-action",
        "url": "https://portal.example.com/vm/done",
        "method": "POST",
        "RecordingUrl": f"https://sandbox.test/Recordings/{sid}",
        "RecordingSid": sid,
        "RecordingDuration": "7",
        "Digits": "hangup",
    }
    assert line.recordings[sid] == {"status": "completed", "duration": 7}
    assert line.events[-2:] == [
        ("end", "completed"),
        ("recording-callback", sid, "https://portal.example.com/vm/status", "POST", "completed"),
    ]
    assert "Thanks" not in spoken(session)  # after a hang-up the action's answer is not run
    assert session.transcript[-2:] == [
        {"event": "recording", "sid": sid, "status": "completed", "duration": 7},
        {
            "event": "request",
            "kind": "record-action",
            "url": "https://portal.example.com/vm/done",
            "method": "POST",
            "status": 200,
        },
    ]


def test_record_finish_key_runs_the_action_answer():
    session, line = run(VOICEMAIL, {"https://portal.example.com/vm/done": response("<Say>Thanks, goodbye.</Say>")})
    session.speak(3)
    session.press("5")  # not a finish key: part of the message
    assert session.waiting is not None
    session.press("#")
    assert line.requests[-1]["Digits"] == "#" and spoken(session)[-1] == "Thanks, goodbye."
    assert session.ended == "completed"


def test_record_silence_is_absent_no_action_next_verb_runs():
    session, line = run(
        VOICEMAIL.replace(
            'recordingStatusCallback="/vm/status"',
            'recordingStatusCallback="/vm/status" recordingStatusCallbackEvent="completed absent"',
        )
    )
    session.timeout()
    [sid] = line.recordings
    assert line.recordings[sid]["status"] == "absent"
    assert [r["kind"] for r in line.requests] == ["voice-url"]
    assert ("recording-callback", sid, "https://portal.example.com/vm/status", "POST", "absent") in line.events
    assert spoken(session)[-1] == "We did not hear anything."


def test_record_ends_at_max_length():
    session, line = run(
        response('<Record maxLength="10" action="/a"/>'), {"https://portal.example.com/a": response("<Hangup/>")}
    )
    session.speak(30)
    assert line.requests[-1]["RecordingDuration"] == "10" and session.ended == "completed"
    assert not [e for e in line.events if e[0] == "recording-callback"]  # none asked for


def test_speaking_outside_a_record_is_refused():
    session, _ = run(MENU)
    with pytest.raises(ValueError):
        session.speak(3)


# ------------------------------------------------------------------------ Dial, Redirect, Hangup, Reject


def test_dial_with_caller_id_posts_the_outcome_to_action():
    session, line = run(
        response('<Dial callerId="+14155550100" action="/dialed"><Number>+14155550111</Number></Dial>', "<Say>x</Say>"),
        {"https://portal.example.com/dialed": response("<Hangup/>")},
    )
    assert ("dial", "+14155550111", "+14155550100") in line.events
    assert {k: line.requests[-1][k] for k in ("DialCallStatus", "DialCallSid", "DialBridged")} == {
        "DialCallStatus": "completed",
        "DialCallSid": "CA" + "d" * 32,
        "DialBridged": "true",
    }
    assert "x" not in spoken(session) and session.ended == "completed"


def test_dial_without_action_continues_and_defaults_the_caller_id():
    session, line = run(response("<Dial>+15005550020</Dial>", "<Say>They are busy.</Say>"), dial_outcome="busy")
    assert ("dial", "+15005550020", "+14155550123") in line.events
    dial = next(e for e in session.transcript if e.get("verb") == "Dial")
    assert dial["status"] == "busy" and spoken(session) == ["They are busy."]


def test_redirect_fetches_the_next_document_and_a_loop_is_cut():
    session, line = run(
        response("<Redirect method='GET'>../next</Redirect>"), {BASE + "next": response("<Say>Next.</Say>")}
    )
    assert line.requests[-1] == {"kind": "redirect", "url": BASE + "next", "method": "GET"}
    assert spoken(session) == ["Next."]
    looping, line = run(response(f"<Redirect>{BASE}inbound/</Redirect>"))
    assert len(line.requests) == 26 and looping.ended == "completed"  # the 26th is not run
    assert looping.errors[0]["code"] == 11200 and "More than 25 documents" in looping.errors[0]["message"]


def test_hangup_stops_the_document():
    session, line = run(response("<Say>Bye</Say>", "<Hangup/>", "<Say>unreachable</Say>"))
    assert spoken(session) == ["Bye"] and session.ended == "completed"


@pytest.mark.parametrize("reason, status", [("busy", "busy"), ("rejected", "no-answer")])
def test_reject_first_never_answers(reason, status):
    session, line = run(response(f'<Reject reason="{reason}"/>'))
    assert not session.answered and line.events == [("end", status)]


def test_reject_after_answering_hangs_up():
    session, line = run(response("<Say>Hi</Say>", "<Reject/>"))
    assert line.events == [("answer",), ("end", "completed")]


# ------------------------------------------------------------------------ failures


def test_a_failed_fetch_or_bad_document_is_an_application_error():
    session, line = run(MENU)
    session.press("9")  # the action URL answers 404
    assert session.errors[0]["code"] == 11200 and spoken(session)[-1] == APPLICATION_ERROR
    assert session.ended == "completed"
    broken, _ = run("<Response><Say>unclosed</Response>")
    assert broken.errors[0]["code"] == 12100 and broken.answered and broken.ended == "completed"


def test_the_numbers_fallback_url_answers_when_the_voice_url_fails():
    line = FakeLine({BASE + "fallback/": response("<Say>Sorry, we are having trouble.</Say>")})
    session = CallSession(line)
    session.start(BASE + "inbound/", "POST", (BASE + "fallback/", "GET"))
    assert line.requests[-1] == {
        "kind": "voice-fallback",
        "url": BASE + "fallback/",
        "method": "GET",
        "ErrorCode": "11200",
        "ErrorUrl": BASE + "inbound/",
    }
    assert spoken(session) == ["Sorry, we are having trouble."] and session.errors[0]["code"] == 11200


def test_the_caller_cannot_act_on_a_call_that_does_not_wait():
    session, _ = run(response("<Hangup/>"))
    with pytest.raises(ValueError):
        session.press("1")
    session.hangup()  # a second hang-up changes nothing
    assert session.ended == "completed"


def test_inline_twiml_runs_without_a_document_url():
    line = FakeLine()
    session = CallSession(line, answered=True)
    session.start_twiml(response("<Say>Your code is 1 2 3.</Say>"))
    assert spoken(session) == ["Your code is 1 2 3."] and line.events == [("end", "completed")]
