"""The call flow definition: the JSON document a `CallFlowVersion` stores, and its validation.

A definition (schema version 1)::

    {
      "schema": 1,
      "voice": "Polly.Joanna", "language": "en-US",      # every <Say> of the flow
      "greeting": {"kind": "say", "text": "Thanks for calling Acme."},   # or {"kind": "play", "url": "https://…"}
      "menu": {
        "prompt": {"kind": "say", "text": "Press 1 for sales, 9 to stop our calls and texts."},
        "timeout": 5,                      # seconds <Gather> waits for a key
        "attempts": 3,                     # how often the prompt is played when nobody presses a key
        "options": [{"digit": "1", "action": {"type": "forward", "target": "+14155550100"}}, …],
        "no_input": {"type": "voicemail"}  # after the last silent attempt ("repeat" = hang up then)
      },
      "hours": {"enabled": true, "days": [0, 1, 2, 3, 4], "open": "09:00", "close": "17:00",
                "holidays": true, "after_hours": {"type": "message", "audio": {…}, "then": "voicemail"}}
    }

Actions (`type`): forward (`target` E.164, `caller_id` "number" = the called number or "caller"
= pass the caller's number through, `timeout`), voicemail (`prompt`, `max_length`), message
(`audio`, `then` = menu | hangup | voicemail), opt_out (calls and texts), repeat (the menu
again), hangup. Validation is the one gate every save goes through (`flow_definition_clean`):
it returns the normalised document or raises one ValidationError listing every problem.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from tenants.phones import phone_parse

SCHEMA_VERSION = 1

#: Twilio text-to-speech voices the editor offers, each with the languages it speaks. Amazon
#: Polly voices (Twilio's `Polly.*`) speak one language each; Twilio's basic `alice` several.
VOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Polly.Joanna": ("Joanna (US English, female)", ("en-US",)),
    "Polly.Matthew": ("Matthew (US English, male)", ("en-US",)),
    "Polly.Amy": ("Amy (British English, female)", ("en-GB",)),
    "Polly.Brian": ("Brian (British English, male)", ("en-GB",)),
    "Polly.Lupe": ("Lupe (US Spanish, female)", ("es-US",)),
    "Polly.Miguel": ("Miguel (US Spanish, male)", ("es-US",)),
    "Polly.Lea": ("Léa (French, female)", ("fr-FR",)),
    "Polly.Mathieu": ("Mathieu (French, male)", ("fr-FR",)),
    "Polly.Vicki": ("Vicki (German, female)", ("de-DE",)),
    "alice": ("Alice (Twilio basic voice)", ("en-US", "en-GB", "es-ES", "es-MX", "fr-FR", "fr-CA", "de-DE")),
}
LANGUAGES: dict[str, str] = {
    "en-US": "English (US)",
    "en-GB": "English (UK)",
    "es-US": "Spanish (US)",
    "es-ES": "Spanish (Spain)",
    "es-MX": "Spanish (Mexico)",
    "fr-FR": "French (France)",
    "fr-CA": "French (Canada)",
    "de-DE": "German",
}

ACTIONS: dict[str, str] = {
    "forward": "Forward the call",
    "voicemail": "Take a voicemail",
    "message": "Play a message",
    "opt_out": "Opt out of calls and texts",
    "repeat": "Repeat the menu",
    "hangup": "Hang up",
}
#: What may follow a message.
MESSAGE_THEN: dict[str, str] = {"menu": "then the menu", "hangup": "then hang up", "voicemail": "then a voicemail"}
CALLER_IDS: dict[str, str] = {"number": "This number (the one called)", "caller": "The caller's number"}
DIGITS = "123456789*0#"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")

MAX_TEXT = 1000  # characters per <Say>: long enough for a policy notice, short of Twilio's 4096 limit
MAX_OPTIONS = len(DIGITS)


def default_definition(*, greeting: str = "Thank you for calling.") -> dict:
    """A sensible first version: a greeting, an empty menu, voicemail when nobody presses a key."""
    return {
        "schema": SCHEMA_VERSION,
        "voice": "Polly.Joanna",
        "language": "en-US",
        "greeting": {"kind": "say", "text": greeting},
        "menu": {
            "prompt": {"kind": "say", "text": ""},
            "timeout": 5,
            "attempts": 2,
            "options": [],
            "no_input": {"type": "voicemail"},
        },
        "hours": {"enabled": False, "days": [0, 1, 2, 3, 4], "open": "09:00", "close": "17:00", "holidays": True},
    }


class _Problems:
    """Collects every problem of a definition, so the admin sees them all at once."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, message: str) -> None:
        self.errors.append(message)


def _text(value, *, limit: int = MAX_TEXT) -> str:
    return str(value or "").strip()[:limit] if isinstance(value, str | int) or value is None else ""


def _https_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname) and not any(c.isspace() for c in value)


def _audio(raw, where: str, problems: _Problems, *, required: bool) -> dict:
    raw = raw if isinstance(raw, dict) else {}
    kind = raw.get("kind") or "say"
    if kind == "play":
        url = _text(raw.get("url"), limit=500)
        if not _https_url(url):
            problems.add(f"{where}: the audio file must be an https:// URL (Twilio fetches it while the caller waits).")
        return {"kind": "play", "url": url}
    if kind != "say":
        problems.add(f"{where}: choose spoken text or an audio file.")
        return {"kind": "say", "text": ""}
    text = _text(raw.get("text"))
    if required and not text:
        problems.add(f"{where}: enter what the caller hears.")
    return {"kind": "say", "text": text}


def _int(value, *, low: int, high: int, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return min(max(number, low), high)


def _action(raw, where: str, problems: _Problems, *, region: str | None) -> dict:
    raw = raw if isinstance(raw, dict) else {}
    kind = raw.get("type")
    if kind not in ACTIONS:
        problems.add(f"{where}: choose what happens (one of: {', '.join(ACTIONS.values()).lower()}).")
        return {"type": "hangup"}
    if kind == "forward":
        try:
            target = phone_parse(_text(raw.get("target"), limit=40), region=region)
        except ValidationError as exc:
            problems.add(f"{where}: forward to a valid number. {' '.join(exc.messages)}")
            target = ""
        caller_id = raw.get("caller_id") if raw.get("caller_id") in CALLER_IDS else "number"
        return {
            "type": kind,
            "target": target,
            "caller_id": caller_id,
            "timeout": _int(raw.get("timeout"), low=5, high=60, default=20),
        }
    if kind == "voicemail":
        return {
            "type": kind,
            "prompt": _text(raw.get("prompt")),
            "max_length": _int(raw.get("max_length"), low=10, high=600, default=120),
        }
    if kind == "message":
        then = raw.get("then") if raw.get("then") in MESSAGE_THEN else "hangup"
        return {"type": kind, "audio": _audio(raw.get("audio"), where, problems, required=True), "then": then}
    return {"type": kind}


def _menu(raw, problems: _Problems, *, region: str | None) -> dict:
    raw = raw if isinstance(raw, dict) else {}
    options = []
    seen: set[str] = set()
    for index, option in enumerate(raw.get("options") or []):
        option = option if isinstance(option, dict) else {}
        digit = _text(option.get("digit"), limit=2)
        where = f"Menu key {digit or f'#{index + 1}'}"
        if len(digit) != 1 or digit not in DIGITS:
            problems.add(f"{where}: a key is one of 0–9, * or #.")
        elif digit in seen:
            problems.add(f"{where}: this key is used twice; each key leads to one action.")
        seen.add(digit)
        options.append({"digit": digit, "action": _action(option.get("action"), where, problems, region=region)})
    if len(options) > MAX_OPTIONS:
        problems.add(f"The menu has {len(options)} keys; a phone has {MAX_OPTIONS}.")
    options.sort(key=lambda o: DIGITS.index(o["digit"]) if o["digit"] in DIGITS else len(DIGITS))
    menu = {
        "prompt": _audio(raw.get("prompt"), "Menu prompt", problems, required=bool(options)),
        "timeout": _int(raw.get("timeout"), low=2, high=30, default=5),
        "attempts": _int(raw.get("attempts"), low=1, high=5, default=2),
        "options": options,
        "no_input": _action(raw.get("no_input"), "When nobody presses a key", problems, region=region),
    }
    return menu


def _hours(raw, problems: _Problems, *, region: str | None) -> dict:
    raw = raw if isinstance(raw, dict) else {}
    enabled = bool(raw.get("enabled"))
    days = sorted({d for d in raw.get("days") or [] if isinstance(d, int) and 0 <= d <= 6})
    hours = {
        "enabled": enabled,
        "days": days,
        "open": _text(raw.get("open"), limit=5) or "09:00",
        "close": _text(raw.get("close"), limit=5) or "17:00",
        "holidays": bool(raw.get("holidays")),
    }
    if not enabled:
        return hours
    if not days:
        problems.add("Business hours: choose at least one open day.")
    if not (_HHMM.fullmatch(hours["open"]) and _HHMM.fullmatch(hours["close"])):
        problems.add("Business hours: give opening and closing times as HH:MM (24-hour clock).")
    elif hours["open"] >= hours["close"]:
        problems.add("Business hours: the closing time must be after the opening time (same day).")
    hours["after_hours"] = _action(raw.get("after_hours"), "After hours", problems, region=region)
    if hours["after_hours"]["type"] == "repeat":
        problems.add("After hours: “repeat the menu” has no menu to repeat; choose the menu through a message.")
    return hours


def _leaves_menu(action: dict) -> bool:
    """Whether an action ends the caller's time in the menu (an exit) rather than returning to it."""
    if action["type"] == "repeat":
        return False
    if action["type"] == "message":
        return action["then"] != "menu"
    return True


def _check_exits(definition: dict, problems: _Problems) -> None:
    """No loop without an exit: from the menu, some key or the silent fallback must lead out."""
    menu = definition["menu"]
    exits = [o for o in menu["options"] if _leaves_menu(o["action"])]
    if not exits and not _leaves_menu(menu["no_input"]):
        problems.add(
            "The menu has no way out: every key and the no-input fallback come back to the menu. "
            "Add a key (or a fallback) that forwards, takes a voicemail, opts out or hangs up."
        )


def flow_definition_clean(raw: dict, *, region: str | None = None) -> dict:
    """The normalised definition, or ValidationError listing every problem.

    `region` reads national forwarding numbers (the tenant's, `tenant_phone_region`); targets are
    stored as E.164 whatever was typed.
    """
    raw = raw if isinstance(raw, dict) else {}
    problems = _Problems()
    voice = raw.get("voice") if raw.get("voice") in VOICES else None
    language = raw.get("language") if raw.get("language") in LANGUAGES else None
    if voice is None:
        problems.add("Choose one of the listed voices.")
    elif language not in VOICES[voice][1]:
        problems.add(f"{VOICES[voice][0]} does not speak {LANGUAGES.get(language or '', 'that language')}.")
    definition = {
        "schema": SCHEMA_VERSION,
        "voice": voice or "Polly.Joanna",
        "language": language or "en-US",
        "greeting": _audio(raw.get("greeting"), "Greeting", problems, required=True),
        "menu": _menu(raw.get("menu"), problems, region=region),
        "hours": _hours(raw.get("hours"), problems, region=region),
    }
    _check_exits(definition, problems)
    if problems.errors:
        raise ValidationError(problems.errors, code="invalid_flow")
    return definition
