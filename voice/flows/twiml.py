"""A call flow turned into TwiML, step by step, with twilio's `VoiceResponse`.

Pure functions of (definition, context): no database, no network, so the inbound webhook answers
at once and the editor's preview shows exactly what Twilio will be told. Steps that continue the
call come back to the gather endpoint with the step in the query string (`?step=menu&attempt=2`):
the Call row holds the flow version, the URL only says where in it the caller is.

An `Outcome` is the TwiML plus what the caller did (`path`, appended to `Call.menu_path`) and the
side effects the answering service must carry out (`opt_out`) before the TwiML is returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

GOODBYE = "Goodbye."
VOICEMAIL_PROMPT = "Please leave a message after the tone. Press the pound key when you are done."
VOICEMAIL_THANKS = "Thank you, your message has been recorded. Goodbye."
WRONG_KEY = "Sorry, that key is not in the menu."
NOT_ANSWERED = "Sorry, no one could take your call. Please try again later. Goodbye."
#: DialCallStatus values meaning the forwarded call was answered (and has now ended).
DIAL_ANSWERED = frozenset({"completed", "answered"})
OPT_OUT_CONFIRMATION = (
    "You will no longer receive calls or text messages from {brand}. "
    "To receive text messages again, text START to this number. Goodbye."
)
DEFAULT_ANSWER = (
    "Thank you for calling {brand}. No one can take your call on this line right now. Please try again later. Goodbye."
)


@dataclass(frozen=True)
class CallContext:
    """What a flow needs to know about the call being answered (or previewed)."""

    gather_url: str  # absolute URL of the gather endpoint (PUBLIC_BASE_URL + path)
    recording_callback: str  # absolute URL of the recording status endpoint
    our_number: str  # the tenant's number on this call (caller ID when forwarding)
    caller: str  # the other party: who opts out, whose number a pass-through caller ID shows
    brand: str  # the tenant's name, in the opt-out confirmation


@dataclass
class Outcome:
    response: VoiceResponse
    path: dict | None = None
    effects: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return str(self.response)


def step_url(ctx: CallContext, step: str, **params) -> str:
    return f"{ctx.gather_url}?{urlencode({'step': step, **params})}"


def _audio(response, definition: dict, audio: dict) -> None:
    if audio.get("kind") == "play":
        response.play(audio["url"])
    elif audio.get("text"):
        _say(response, definition, audio["text"])


def _say(response, definition: dict, text: str) -> None:
    response.say(text, voice=definition["voice"], language=definition["language"])


def _goodbye(response, definition: dict, text: str = GOODBYE) -> None:
    _say(response, definition, text)
    response.hangup()


def _menu(response, definition: dict, ctx: CallContext, *, attempt: int, outcome: Outcome | None) -> None:
    """The menu prompt inside a <Gather>; silence falls through to a <Redirect> without Digits.
    A menu without keys goes straight to its fallback (validation keeps that from looping)."""
    menu = definition["menu"]
    if not menu["options"]:
        fallback = menu["no_input"]
        if fallback["type"] == "repeat" or (fallback["type"] == "message" and fallback["then"] == "menu"):
            _goodbye(response, definition)
        else:
            _action(response, definition, ctx, fallback, outcome=outcome)
        return
    url = step_url(ctx, "menu", attempt=attempt)
    gather = response.gather(num_digits=1, action=url, method="POST", timeout=menu["timeout"])
    _audio(gather, definition, menu["prompt"])
    response.redirect(url, method="POST")


def _voicemail(response, definition: dict, ctx: CallContext, action: dict) -> None:
    _say(response, definition, action.get("prompt") or VOICEMAIL_PROMPT)
    response.record(
        action=step_url(ctx, "voicemail"),
        method="POST",
        max_length=action.get("max_length", 120),
        finish_on_key="#",
        play_beep=True,
        recording_status_callback=ctx.recording_callback,
        recording_status_callback_method="POST",
        recording_status_callback_event="completed absent",
    )
    _goodbye(response, definition)  # reached only when nothing was recorded


def _action(response, definition: dict, ctx: CallContext, action: dict, *, outcome: Outcome | None) -> None:
    kind = action["type"]
    if kind == "forward":
        caller_id = ctx.caller if action.get("caller_id") == "caller" else ctx.our_number
        # Twilio asks the action URL when the forwarded leg ends: the caller is told if nobody
        # answered, and the outcome joins the menu path.
        dial = response.dial(
            caller_id=caller_id, timeout=action.get("timeout", 20), action=step_url(ctx, "dialed"), method="POST"
        )
        dial.number(action["target"])
    elif kind == "voicemail":
        _voicemail(response, definition, ctx, action)
    elif kind == "message":
        _audio(response, definition, action["audio"])
        if action["then"] == "menu":
            _menu(response, definition, ctx, attempt=1, outcome=outcome)
        elif action["then"] == "voicemail":
            _voicemail(response, definition, ctx, {"type": "voicemail"})
        else:
            response.hangup()
    elif kind == "opt_out":
        if outcome is not None:
            outcome.effects.append("opt_out")
        _goodbye(response, definition, OPT_OUT_CONFIRMATION.format(brand=ctx.brand))
    elif kind == "repeat":
        _menu(response, definition, ctx, attempt=1, outcome=outcome)
    else:
        _goodbye(response, definition)


def render_answer(definition: dict, ctx: CallContext, *, is_open: bool = True) -> Outcome:
    """The first TwiML of a call: greeting, then the menu (or the after-hours branch)."""
    outcome = Outcome(VoiceResponse())
    response = outcome.response
    _audio(response, definition, definition["greeting"])
    if not is_open:
        outcome.path = {"step": "answer", "digits": "", "action": "after_hours"}
        _action(response, definition, ctx, definition["hours"]["after_hours"], outcome=outcome)
    else:
        outcome.path = {"step": "answer", "digits": "", "action": "menu"}
        _menu(response, definition, ctx, attempt=1, outcome=outcome)
    return outcome


def _menu_step(outcome: Outcome, definition: dict, ctx: CallContext, *, digits: str, attempt: int) -> None:
    menu = definition["menu"]
    response = outcome.response
    option = next((o for o in menu["options"] if digits and o["digit"] == digits[:1]), None)
    if option is not None:
        outcome.path = {"step": "menu", "digits": digits[:1], "action": option["action"]["type"]}
        _action(response, definition, ctx, option["action"], outcome=outcome)
        return
    if digits:
        _say(response, definition, WRONG_KEY)
    if attempt < menu["attempts"]:
        outcome.path = {"step": "menu", "digits": digits[:1], "action": "wrong_key" if digits else "retry"}
        _menu(response, definition, ctx, attempt=attempt + 1, outcome=outcome)
        return
    fallback = menu["no_input"]
    outcome.path = {"step": "menu", "digits": digits[:1], "action": f"no_input:{fallback['type']}"}
    if fallback["type"] == "repeat":  # the attempts are used up: repeating forever is not an option
        _goodbye(response, definition)
    else:
        _action(response, definition, ctx, fallback, outcome=outcome)


def render_step(
    definition: dict, ctx: CallContext, *, step: str, digits: str = "", attempt: int = 1, dial_status: str = ""
) -> Outcome:
    """The TwiML for the gather endpoint: the caller pressed `digits` (or nothing) at `step`;
    after a forward, `dial_status` is Twilio's DialCallStatus."""
    outcome = Outcome(VoiceResponse())
    if step == "menu" and definition["menu"]["options"]:
        _menu_step(outcome, definition, ctx, digits=digits, attempt=max(1, attempt))
    elif step == "dialed":
        answered = dial_status in DIAL_ANSWERED
        outcome.path = {"step": "dialed", "digits": "", "action": "answered" if answered else "not_answered"}
        if answered:
            outcome.response.hangup()
        else:
            _goodbye(outcome.response, definition, NOT_ANSWERED)
    elif step == "voicemail":
        outcome.path = {"step": "voicemail", "digits": "", "action": "recorded"}
        _goodbye(outcome.response, definition, VOICEMAIL_THANKS)
    else:  # a step this version doesn't have (a hand-made URL, or a menu since emptied): end politely
        outcome.path = {"step": "unknown", "digits": digits[:1], "action": "unknown_step"}
        _goodbye(outcome.response, definition)
    return outcome


def render_default(*, brand: str) -> VoiceResponse:
    """What a number without a flow answers: a polite message, then hang up."""
    response = VoiceResponse()
    response.say(DEFAULT_ANSWER.format(brand=brand))
    response.hangup()
    return response


def render_reject() -> VoiceResponse:
    """For a number the tenant doesn't have: refuse the call without answering (no charge)."""
    response = VoiceResponse()
    response.reject(reason="rejected")
    return response
