"""The call flow engine without HTTP: validation, the TwiML of every action (parsed as XML),
business hours and the step-through preview."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
from django.core.exceptions import ValidationError

from voice.flows.hours import hours_open
from voice.flows.preview import flow_preview
from voice.flows.schema import default_definition, flow_definition_clean
from voice.flows.twiml import CallContext, render_answer, render_default, render_reject, render_step

GATHER = "https://portal.example/webhooks/twilio/voice/gather/"
RECORDING = "https://portal.example/webhooks/twilio/voice/recording/"
OURS = "+14155550111"
CALLER = "+14155550122"
CTX = CallContext(gather_url=GATHER, recording_callback=RECORDING, our_number=OURS, caller=CALLER, brand="Acme")


def flow(**changes) -> dict:
    """A valid raw definition with every action type on a key."""
    raw = {
        "voice": "Polly.Amy",
        "language": "en-GB",
        "greeting": {"kind": "say", "text": "Thank you for calling Acme."},
        "menu": {
            "prompt": {"kind": "say", "text": "Press 1 for sales."},
            "timeout": 7,
            "attempts": 2,
            "options": [
                {"digit": "1", "action": {"type": "forward", "target": "+1 (212) 555-0199", "caller_id": "number"}},
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
                {"digit": "4", "action": {"type": "forward", "target": "+442071838750", "caller_id": "caller"}},
            ],
            "no_input": {"type": "voicemail"},
        },
        "hours": {
            "enabled": True,
            "days": [0, 1, 2, 3, 4],
            "open": "09:00",
            "close": "17:00",
            "holidays": True,
            "after_hours": {"type": "message", "audio": {"kind": "say", "text": "We are closed."}, "then": "voicemail"},
        },
    }
    for key, value in changes.items():
        raw[key] = value
    return raw


def xml(outcome) -> ElementTree.Element:
    root = ElementTree.fromstring(str(outcome))
    assert root.tag == "Response"
    return root


def query(url: str) -> dict:
    parts = urlsplit(url)
    assert parts.scheme == "https" and url.startswith(GATHER)
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


@pytest.fixture
def definition():
    return flow_definition_clean(flow())


# --- TwiML per action ---------------------------------------------------------------------------


def test_answer_greets_with_the_chosen_voice_then_gathers_one_key_with_an_absolute_action(definition):
    root = xml(render_answer(definition, CTX))
    say, gather, redirect = list(root)
    assert (say.tag, say.text, say.get("voice"), say.get("language")) == (
        "Say",
        "Thank you for calling Acme.",
        "Polly.Amy",
        "en-GB",
    )
    assert gather.tag == "Gather" and gather.get("numDigits") == "1" and gather.get("timeout") == "7"
    assert gather.get("method") == "POST" and query(gather.get("action")) == {"step": "menu", "attempt": "1"}
    assert [c.tag for c in gather] == ["Say"] and gather[0].text == "Press 1 for sales."
    # Silence falls through to a redirect to the same step without Digits.
    assert redirect.tag == "Redirect" and query(redirect.text) == {"step": "menu", "attempt": "1"}


def test_forward_dials_the_e164_target_with_our_number_as_caller_id(definition):
    outcome = render_step(definition, CTX, step="menu", digits="1")
    (dial,) = list(xml(outcome))
    assert dial.tag == "Dial" and dial.get("callerId") == OURS and dial.get("timeout") == "20"
    assert [(n.tag, n.text) for n in dial] == [("Number", "+12125550199")]
    assert query(dial.get("action")) == {"step": "dialed"} and dial.get("method") == "POST"
    assert outcome.path == {"step": "menu", "digits": "1", "action": "forward"}
    assert outcome.effects == []


@pytest.mark.parametrize(
    ("status", "tags", "action"),
    [
        ("completed", ["Hangup"], "answered"),
        ("answered", ["Hangup"], "answered"),
        ("no-answer", ["Say", "Hangup"], "not_answered"),
        ("busy", ["Say", "Hangup"], "not_answered"),
        ("failed", ["Say", "Hangup"], "not_answered"),
        ("", ["Say", "Hangup"], "not_answered"),
    ],
)
def test_after_a_forward_the_caller_hears_whether_anyone_answered(definition, status, tags, action):
    outcome = render_step(definition, CTX, step="dialed", dial_status=status)
    assert [e.tag for e in xml(outcome)] == tags
    assert outcome.path == {"step": "dialed", "digits": "", "action": action}


def test_forward_can_pass_the_callers_number_through(definition):
    dial = xml(render_step(definition, CTX, step="menu", digits="4"))[0]
    assert dial.get("callerId") == CALLER and dial[0].text == "+442071838750"


def test_voicemail_records_with_the_recording_status_callback(definition):
    say, record, bye, hangup = list(xml(render_step(definition, CTX, step="menu", digits="2")))
    assert say.text == "Leave a message."
    assert record.tag == "Record" and record.get("maxLength") == "60" and record.get("playBeep") == "true"
    assert record.get("recordingStatusCallback") == RECORDING
    assert record.get("recordingStatusCallbackMethod") == "POST"
    assert query(record.get("action")) == {"step": "voicemail"}
    assert (bye.tag, hangup.tag) == ("Say", "Hangup")
    thanks, end = list(xml(render_step(definition, CTX, step="voicemail")))
    assert "recorded" in thanks.text and end.tag == "Hangup"


def test_message_plays_the_audio_then_the_menu_again(definition):
    play, gather, redirect = list(xml(render_step(definition, CTX, step="menu", digits="3")))
    assert play.tag == "Play" and play.text == "https://cdn.example/hours.mp3"
    assert gather.tag == "Gather" and redirect.tag == "Redirect"


def test_opt_out_confirms_by_voice_and_asks_the_service_to_record_it(definition):
    outcome = render_step(definition, CTX, step="menu", digits="9")
    say, hangup = list(xml(outcome))
    assert "no longer receive calls or text messages from Acme" in say.text and hangup.tag == "Hangup"
    assert outcome.effects == ["opt_out"]


def test_repeat_and_hangup(definition):
    assert [e.tag for e in xml(render_step(definition, CTX, step="menu", digits="0"))] == ["Gather", "Redirect"]
    assert [e.tag for e in xml(render_step(definition, CTX, step="menu", digits="#"))] == ["Say", "Hangup"]


def test_no_input_prompts_again_then_takes_the_fallback(definition):
    first = render_step(definition, CTX, step="menu", digits="", attempt=1)
    gather = xml(first).find("Gather")
    assert query(gather.get("action")) == {"step": "menu", "attempt": "2"}
    assert first.path["action"] == "retry"
    last = render_step(definition, CTX, step="menu", digits="", attempt=2)
    assert [e.tag for e in xml(last)] == ["Say", "Record", "Say", "Hangup"]
    assert last.path["action"] == "no_input:voicemail"


def test_a_key_not_in_the_menu_says_so_and_prompts_again(definition):
    root = xml(render_step(definition, CTX, step="menu", digits="7", attempt=1))
    assert root[0].text.startswith("Sorry, that key is not in the menu") and root[1].tag == "Gather"


def test_after_hours_branch_after_the_greeting(definition):
    outcome = render_answer(definition, CTX, is_open=False)
    tags = [e.tag for e in xml(outcome)]
    assert tags == ["Say", "Say", "Say", "Record", "Say", "Hangup"]
    assert xml(outcome)[1].text == "We are closed."
    assert outcome.path["action"] == "after_hours"


def test_an_unknown_step_ends_politely(definition):
    assert [e.tag for e in xml(render_step(definition, CTX, step="nonsense"))] == ["Say", "Hangup"]


def test_default_and_reject():
    default = ElementTree.fromstring(str(render_default(brand="Acme")))
    assert [e.tag for e in default] == ["Say", "Hangup"] and "Acme" in default[0].text
    reject = ElementTree.fromstring(str(render_reject()))
    assert [e.tag for e in reject] == ["Reject"]


def test_greeting_can_be_an_audio_file():
    definition = flow_definition_clean(flow(greeting={"kind": "play", "url": "https://cdn.example/hello.wav"}))
    assert xml(render_answer(definition, CTX))[0].tag == "Play"


# --- Validation ---------------------------------------------------------------------------------


def errors(raw) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        flow_definition_clean(raw)
    return exc.value.messages


def test_targets_are_stored_as_e164(definition):
    first = definition["menu"]["options"][0]  # sorted in keypad order: 1 first
    assert (first["digit"], first["action"]["target"]) == ("1", "+12125550199")


def test_dangling_digit_without_an_action():
    raw = flow()
    raw["menu"]["options"].append({"digit": "5", "action": {}})
    assert any(m.startswith("Menu key 5: choose what happens") for m in errors(raw))


def test_duplicate_and_invalid_keys():
    raw = flow()
    raw["menu"]["options"] += [
        {"digit": "1", "action": {"type": "hangup"}},
        {"digit": "12", "action": {"type": "hangup"}},
    ]
    messages = errors(raw)
    assert any("used twice" in m for m in messages)
    assert any("a key is one of 0–9" in m for m in messages)


def test_invalid_forward_target():
    raw = flow()
    raw["menu"]["options"][0]["action"]["target"] = "555-0199"
    assert any(m.startswith("Menu key 1: forward to a valid number") for m in errors(raw))


def test_audio_must_be_https():
    for url in ("http://cdn.example/a.mp3", "ftp://x/a.mp3", "javascript:alert(1)", ""):
        assert any("https:// URL" in m for m in errors(flow(greeting={"kind": "play", "url": url})))


def test_voice_and_language_come_from_the_fixed_list():
    assert any("listed voices" in m for m in errors(flow(voice="Polly.Nobody")))
    assert any("does not speak" in m for m in errors(flow(voice="Polly.Joanna", language="fr-FR")))


def test_a_menu_without_an_exit_is_refused():
    raw = flow()
    raw["menu"]["options"] = [
        {"digit": "1", "action": {"type": "repeat"}},
        {"digit": "2", "action": {"type": "message", "audio": {"kind": "say", "text": "Hi"}, "then": "menu"}},
    ]
    raw["menu"]["no_input"] = {"type": "repeat"}
    assert any("no way out" in m for m in errors(raw))
    raw["menu"]["no_input"] = {"type": "hangup"}
    flow_definition_clean(raw)  # one exit is enough


def test_business_hours_are_checked_when_on():
    raw = flow()
    raw["hours"].update(days=[], open="18:00", close="08:00", after_hours={"type": "repeat"})
    messages = errors(raw)
    assert any("at least one open day" in m for m in messages)
    assert any("closing time must be after" in m for m in messages)
    assert any("After hours" in m for m in messages)


def test_every_problem_is_listed_at_once():
    raw = flow(voice="nope", greeting={"kind": "say", "text": ""})
    raw["menu"]["options"][0]["action"]["target"] = "nope"
    assert len(errors(raw)) >= 3


def test_the_default_definition_is_valid():
    assert flow_definition_clean(default_definition())["menu"]["no_input"] == {
        "type": "voicemail",
        "prompt": "",
        "max_length": 120,
    }


# --- Business hours -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 4, 14, 0, tzinfo=UTC), True),  # Wednesday 09:00 in New York
        (datetime(2026, 3, 4, 13, 59, tzinfo=UTC), False),  # 08:59
        (datetime(2026, 3, 4, 22, 0, tzinfo=UTC), False),  # 17:00: closed
        (datetime(2026, 3, 7, 16, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2026, 7, 3, 16, 0, tzinfo=UTC), False),  # Friday 3 July 2026: Independence Day observed
    ],
)
def test_hours_in_the_tenant_time_zone_with_holidays(definition, moment, expected):
    assert hours_open(definition["hours"], now=moment, zone="America/New_York", country="US") is expected


def test_holidays_can_be_ignored_and_hours_switched_off(definition):
    hours = {**definition["hours"], "holidays": False}
    assert hours_open(hours, now=datetime(2026, 7, 3, 16, 0, tzinfo=UTC), zone="America/New_York", country="US")
    assert hours_open({"enabled": False}, now=datetime(2026, 3, 7, 3, 0, tzinfo=UTC), zone="UTC", country="US")


# --- Preview ------------------------------------------------------------------------------------


def test_preview_walks_every_key_the_after_hours_branch_and_silence(definition):
    scenes = {s.title: s.lines for s in flow_preview(definition, CTX)}
    titles = list(scenes)
    assert titles[0].startswith("A call comes in (open Mon, Tue, Wed, Thu, Fri 09:00–17:00, closed on public holidays")
    assert "After hours" in titles
    assert "The caller presses 1 (forward the call)" in titles
    assert scenes["The caller presses 1 (forward the call)"] == [
        f"Forwarded to +12125550199 (caller ID: {OURS}, rings 20 s).",
        "If no one answers: “Sorry, no one could take your call. Please try again later. Goodbye.” and the call ends.",
    ]
    assert scenes["The caller presses 9 (opt out of calls and texts)"][0].startswith("Records an opt-out")
    assert any(t.startswith("Nobody presses a key") for t in titles)
    assert scenes["After hours"][1] == "Hears: “We are closed.”"
    assert "After a voicemail" in titles
