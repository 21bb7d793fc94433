"""The flow engine's TwiML as the sandbox's phone hears it: every action of a call flow
(voice/flows/twiml.py) run by the sandbox's TwiML interpreter (sandbox/twiml.py), with each
Gather/Record/Redirect request answered by the engine's next step, as the gather webhook would
answer it (without HTTP or a database: the webhooks' own tests cover those). What the engine
writes must be TwiML Twilio runs, and running it must do what the flow says."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox.twiml import CallSession
from tests.sandbox.test_twiml import FakeLine
from voice.flows.schema import flow_definition_clean
from voice.flows.twiml import CallContext, render_answer, render_step

INBOUND = "https://portal.example/webhooks/twilio/voice/inbound/"
GATHER = "https://portal.example/webhooks/twilio/voice/gather/"
RECORDING = "https://portal.example/webhooks/twilio/voice/recording/"
OURS, CALLER = "+14155550111", "+14155550122"
CTX = CallContext(gather_url=GATHER, recording_callback=RECORDING, our_number=OURS, caller=CALLER, brand="Acme")
DEFINITION = flow_definition_clean(
    {
        "voice": "Polly.Joanna",
        "language": "en-US",
        "greeting": {"kind": "say", "text": "Thank you for calling Acme."},
        "menu": {
            "prompt": {"kind": "say", "text": "Press 1 for sales, 2 for voicemail."},
            "timeout": 5,
            "attempts": 2,
            "options": [
                {"digit": "1", "action": {"type": "forward", "target": "+12125550199", "caller_id": "number"}},
                {"digit": "2", "action": {"type": "voicemail", "prompt": "Leave a message.", "max_length": 60}},
                {
                    "digit": "3",
                    "action": {
                        "type": "message",
                        "audio": {"kind": "play", "url": "https://cdn.example/hours.mp3"},
                        "then": "menu",
                    },
                },
                {"digit": "9", "action": {"type": "opt_out"}},
                {"digit": "0", "action": {"type": "repeat"}},
                {"digit": "#", "action": {"type": "hangup"}},
            ],
            "no_input": {"type": "voicemail"},
        },
        "hours": {"enabled": False},
    }
)


class FlowLine(FakeLine):
    """Answers the voice URL with the flow's first TwiML and the gather URL with its next step."""

    def request(self, kind, url, method, extra):
        self.requests.append({"kind": kind, "url": url, "method": method, **extra})
        if url == INBOUND:
            return 200, str(render_answer(DEFINITION, CTX))
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert url.startswith(GATHER + "?") and method == "POST", url
        step = render_step(
            DEFINITION, CTX, step=query["step"], digits=extra.get("Digits", ""), attempt=int(query.get("attempt", "1"))
        )
        return 200, str(step)


def call() -> tuple[CallSession, FlowLine]:
    line = FlowLine()
    session = CallSession(line)
    session.start(INBOUND)
    assert session.errors == [] and session.waiting is not None and session.waiting.verb.tag == "Gather"
    return session, line


def spoken(session: CallSession) -> list[str]:
    return [e["text"] for e in session.transcript if e.get("verb") == "Say"]


def test_the_greeting_and_menu_wait_for_a_key():
    session, line = call()
    assert spoken(session) == ["Thank you for calling Acme.", "Press 1 for sales, 2 for voicemail."]
    assert {e["voice"] for e in session.transcript if e.get("verb") == "Say"} == {"Polly.Joanna"}


def test_forward_dials_the_target_with_our_number_as_caller_id():
    session, line = call()
    session.press("1")
    assert ("dial", "+12125550199", OURS) in line.events and session.ended == "completed"


def test_voicemail_records_and_reports_the_recording():
    session, line = call()
    session.press("2")
    assert session.waiting.verb.tag == "Record" and spoken(session)[-1] == "Leave a message."
    session.speak(5)
    session.press("#")
    [sid] = line.recordings
    assert line.recordings[sid] == {"status": "completed", "duration": 5}
    assert ("recording-callback", sid, RECORDING, "POST", "completed") in line.events
    assert line.requests[-1]["RecordingSid"] == sid and "step=voicemail" in line.requests[-1]["url"]
    assert session.ended == "completed" and session.errors == []


def test_a_silent_voicemail_is_absent_and_says_goodbye():
    session, line = call()
    session.press("2")
    session.timeout()
    [sid] = line.recordings
    assert ("recording-callback", sid, RECORDING, "POST", "absent") in line.events
    assert session.ended == "completed" and session.errors == []


@pytest.mark.parametrize("key, waits", [("3", True), ("0", True), ("9", False), ("#", False)])
def test_message_repeat_opt_out_and_hangup(key, waits):
    session, line = call()
    session.press(key)
    assert session.errors == []
    assert (session.waiting is not None) is waits and (session.ended is None) is waits
    if key == "3":
        assert any(e.get("url") == "https://cdn.example/hours.mp3" for e in session.transcript)
    if key == "9":
        assert "You will no longer receive calls or text messages from Acme" in spoken(session)[-1]
    if key == "#":  # a key like any other, not Twilio's default finishOnKey
        assert line.requests[-1]["Digits"] == "#" and spoken(session)[-1] == "Goodbye."


def test_silence_retries_then_falls_back_to_voicemail():
    session, line = call()
    session.timeout()
    assert session.waiting.verb.tag == "Gather"  # attempt 2
    session.timeout()
    assert session.waiting.verb.tag == "Record" and session.errors == []
