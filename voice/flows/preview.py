"""The editor's step-through preview: every path through a flow, told in words.

Computed from the very TwiML the webhooks return (`twiml.render_answer` / `render_step`, parsed
back with xml.etree), so the preview cannot drift from what Twilio is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

from .schema import ACTIONS, WEEKDAYS
from .twiml import NOT_ANSWERED, CallContext, Outcome, render_answer, render_step

PREVIEW_CALLER = "the caller's number"


@dataclass
class Scene:
    title: str
    lines: list[str] = field(default_factory=list)


def _describe(element: ElementTree.Element, lines: list[str], *, attempts: int, indent: str = "") -> None:
    tag, attrs, text = element.tag, element.attrib, (element.text or "").strip()
    if tag == "Say":
        lines.append(f"{indent}Hears: “{text}”")
    elif tag == "Play":
        lines.append(f"{indent}Hears the audio file {text}")
    elif tag == "Gather":
        lines.append(f"{indent}Menu (waits {attrs.get('timeout', '5')} s for a key):")
        for child in element:
            _describe(child, lines, attempts=attempts, indent=indent + "    ")
    elif tag == "Redirect":
        attempt = int(parse_qs(urlsplit(text).query).get("attempt", ["1"])[0])
        if attempt < attempts:
            lines.append(f"{indent}No key pressed: the menu again (attempt {attempt + 1} of {attempts}).")
        else:
            lines.append(f"{indent}No key pressed: see “Nobody presses a key”.")
    elif tag == "Dial":
        for number in element:
            lines.append(
                f"{indent}Forwarded to {(number.text or '').strip()} "
                f"(caller ID: {attrs.get('callerId')}, rings {attrs.get('timeout', '30')} s)."
            )
        if attrs.get("action"):
            lines.append(f"{indent}If no one answers: “{NOT_ANSWERED}” and the call ends.")
    elif tag == "Record":
        lines.append(
            f"{indent}Voicemail is recorded (up to {attrs.get('maxLength')} s; # ends it). If nothing is recorded:"
        )
    elif tag == "Hangup":
        lines.append(f"{indent}The call ends.")
    elif tag == "Reject":
        lines.append(f"{indent}The call is rejected.")


def _scene(title: str, outcome: Outcome, *, attempts: int) -> Scene:
    scene = Scene(title)
    if "opt_out" in outcome.effects:
        scene.lines.append("Records an opt-out of calls and texts for the caller (ledger source: voice key press).")
    for element in ElementTree.fromstring(str(outcome.response)):
        _describe(element, scene.lines, attempts=attempts)
    return scene


def _hours_text(hours: dict) -> str:
    days = ", ".join(WEEKDAYS[d][:3] for d in hours["days"]) or "no day"
    closed = ", closed on public holidays" if hours.get("holidays") else ""
    return f"open {days} {hours['open']}–{hours['close']}{closed}"


def flow_preview(definition: dict, ctx: CallContext) -> list[Scene]:
    """Every scene a caller can meet: answered (open / after hours), each key, no key, voicemail."""
    menu = definition["menu"]
    attempts = menu["attempts"]
    hours = definition["hours"]
    title = f"A call comes in ({_hours_text(hours)})" if hours["enabled"] else "A call comes in"
    scenes = [_scene(title, render_answer(definition, ctx, is_open=True), attempts=attempts)]
    if hours["enabled"]:
        scenes.append(
            _scene("After hours", render_answer(definition, ctx, is_open=False), attempts=attempts),
        )
    for option in menu["options"]:
        outcome = render_step(definition, ctx, step="menu", digits=option["digit"], attempt=1)
        label = ACTIONS[option["action"]["type"]].lower()
        scenes.append(_scene(f"The caller presses {option['digit']} ({label})", outcome, attempts=attempts))
    if menu["options"]:
        outcome = render_step(definition, ctx, step="menu", digits="", attempt=attempts)
        scenes.append(_scene(f"Nobody presses a key ({attempts} × the prompt)", outcome, attempts=attempts))
    if _has_voicemail(definition):
        outcome = render_step(definition, ctx, step="voicemail")
        scenes.append(_scene("After a voicemail", outcome, attempts=attempts))
    return scenes


def _has_voicemail(definition: dict) -> bool:
    actions = [o["action"] for o in definition["menu"]["options"]] + [definition["menu"]["no_input"]]
    if definition["hours"]["enabled"]:
        actions.append(definition["hours"]["after_hours"])
    return any(a["type"] == "voicemail" or (a["type"] == "message" and a["then"] == "voicemail") for a in actions)
