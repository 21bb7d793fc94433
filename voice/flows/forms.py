"""The flow editor: plain server-rendered forms that build a definition for the engine.

The forms only collect what the admin typed; `schema.flow_definition_clean` (run by the saving
service) is the one place that decides whether a flow is valid, so a definition cannot be
accepted here and refused there.
"""

from __future__ import annotations

from django import forms

from .schema import ACTIONS, CALLER_IDS, DIGITS, LANGUAGES, MESSAGE_THEN, VOICES, WEEKDAYS

AUDIO_KINDS = [("say", "Spoken text"), ("play", "Audio file (https:// URL)")]
_TEXT = forms.Textarea(attrs={"rows": 2})


def _audio(kind: str, text: str, url: str) -> dict:
    return {"kind": kind or "say", "text": text or "", "url": url or ""}


class ActionForm(forms.Form):
    """One action: a menu key's, the no-input fallback's or the after-hours branch's."""

    type = forms.ChoiceField(label="Action", choices=[("", "—")] + list(ACTIONS.items()), required=False)
    target = forms.CharField(label="Forward to", max_length=40, required=False)
    caller_id = forms.ChoiceField(label="Caller ID shown", choices=list(CALLER_IDS.items()), required=False)
    ring_timeout = forms.IntegerField(label="Ring for (s)", min_value=5, max_value=60, required=False, initial=20)
    audio_kind = forms.ChoiceField(label="Message", choices=AUDIO_KINDS, required=False)
    audio_text = forms.CharField(label="Message text", max_length=1000, required=False, widget=_TEXT)
    audio_url = forms.CharField(label="Message audio URL", max_length=500, required=False)
    then = forms.ChoiceField(label="After the message", choices=list(MESSAGE_THEN.items()), required=False)
    prompt = forms.CharField(label="Voicemail prompt", max_length=1000, required=False, widget=_TEXT)
    max_length = forms.IntegerField(label="Longest voicemail (s)", min_value=10, max_value=600, required=False)

    def action(self) -> dict:
        data = self.cleaned_data
        return {
            "type": data.get("type") or "",
            "target": data.get("target") or "",
            "caller_id": data.get("caller_id") or "number",
            "timeout": data.get("ring_timeout") or 20,
            "audio": _audio(data.get("audio_kind"), data.get("audio_text"), data.get("audio_url")),
            "then": data.get("then") or "hangup",
            "prompt": data.get("prompt") or "",
            "max_length": data.get("max_length") or 120,
        }

    @staticmethod
    def initial_for(action: dict | None) -> dict:
        action = action or {}
        audio = action.get("audio") or {}
        return {
            "type": action.get("type", ""),
            "target": action.get("target", ""),
            "caller_id": action.get("caller_id", "number"),
            "ring_timeout": action.get("timeout", 20),
            "audio_kind": audio.get("kind", "say"),
            "audio_text": audio.get("text", ""),
            "audio_url": audio.get("url", ""),
            "then": action.get("then", "hangup"),
            "prompt": action.get("prompt", ""),
            "max_length": action.get("max_length", 120),
        }


class OptionForm(ActionForm):
    """A menu key and what it does. A row left with neither key nor action is ignored."""

    digit = forms.ChoiceField(label="Key", choices=[("", "—")] + [(d, d) for d in DIGITS], required=False)
    field_order = ["digit", "type"]

    def is_blank(self) -> bool:
        return not self.cleaned_data.get("digit") and not self.cleaned_data.get("type")


OptionFormSet = forms.formset_factory(OptionForm, extra=3, can_delete=True, max_num=len(DIGITS), validate_max=True)


class FlowForm(forms.Form):
    name = forms.CharField(max_length=80, required=False, help_text="For you; callers never hear it.")
    voice = forms.ChoiceField(choices=[(k, label) for k, (label, _) in VOICES.items()])
    language = forms.ChoiceField(choices=list(LANGUAGES.items()))
    greeting_kind = forms.ChoiceField(label="Greeting", choices=AUDIO_KINDS)
    greeting_text = forms.CharField(label="Greeting text", max_length=1000, required=False, widget=_TEXT)
    greeting_url = forms.CharField(label="Greeting audio URL", max_length=500, required=False)
    prompt_kind = forms.ChoiceField(label="Menu prompt", choices=AUDIO_KINDS)
    prompt_text = forms.CharField(
        label="Menu prompt text",
        max_length=1000,
        required=False,
        widget=_TEXT,
        help_text="Name every key, e.g. “Press 1 for sales. Press 9 to stop our calls and texts.”",
    )
    prompt_url = forms.CharField(label="Menu prompt audio URL", max_length=500, required=False)
    timeout = forms.IntegerField(label="Wait for a key (s)", min_value=2, max_value=30, initial=5)
    attempts = forms.IntegerField(label="Prompt at most (times)", min_value=1, max_value=5, initial=2)
    hours_enabled = forms.BooleanField(label="Use business hours", required=False)
    days = forms.TypedMultipleChoiceField(
        label="Open days",
        choices=list(enumerate(WEEKDAYS)),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    open = forms.CharField(label="Opens (HH:MM)", max_length=5, required=False, initial="09:00")
    close = forms.CharField(label="Closes (HH:MM)", max_length=5, required=False, initial="17:00")
    holidays = forms.BooleanField(label="Closed on public holidays", required=False)


class FlowEditor:
    """The editor's forms together: the flow, its keys, the no-input fallback, after hours."""

    def __init__(self, data=None, *, definition: dict, name: str = "") -> None:
        menu, hours = definition["menu"], definition["hours"]
        initial = {
            "name": name,
            "voice": definition["voice"],
            "language": definition["language"],
            "greeting_kind": definition["greeting"].get("kind", "say"),
            "greeting_text": definition["greeting"].get("text", ""),
            "greeting_url": definition["greeting"].get("url", ""),
            "prompt_kind": menu["prompt"].get("kind", "say"),
            "prompt_text": menu["prompt"].get("text", ""),
            "prompt_url": menu["prompt"].get("url", ""),
            "timeout": menu["timeout"],
            "attempts": menu["attempts"],
            "hours_enabled": hours["enabled"],
            "days": hours["days"],
            "open": hours["open"],
            "close": hours["close"],
            "holidays": hours["holidays"],
        }
        options = [{"digit": o["digit"], **ActionForm.initial_for(o["action"])} for o in menu["options"]]
        self.flow = FlowForm(data, initial=initial, prefix="flow")
        # Bound, the rows are what was posted: with initial rows an unchanged row would count
        # as "empty" and be dropped, losing a key the admin kept.
        self.options = OptionFormSet(data, initial=None if data is not None else options, prefix="options")
        self.no_input = ActionForm(data, initial=ActionForm.initial_for(menu["no_input"]), prefix="no_input")
        self.after_hours = ActionForm(
            data, initial=ActionForm.initial_for(hours.get("after_hours")), prefix="after_hours"
        )

    def is_valid(self) -> bool:
        forms_valid = [f.is_valid() for f in (self.flow, self.options, self.no_input, self.after_hours)]
        return all(forms_valid)

    @property
    def name(self) -> str:
        return self.flow.cleaned_data.get("name", "")

    def definition(self) -> dict:
        """The raw definition (call after is_valid()); the schema validates it."""
        data = self.flow.cleaned_data
        options = [
            {"digit": f.cleaned_data.get("digit") or "", "action": f.action()}
            for f in self.options.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE") and not f.is_blank()
        ]
        return {
            "voice": data["voice"],
            "language": data["language"],
            "greeting": _audio(data["greeting_kind"], data["greeting_text"], data["greeting_url"]),
            "menu": {
                "prompt": _audio(data["prompt_kind"], data["prompt_text"], data["prompt_url"]),
                "timeout": data["timeout"],
                "attempts": data["attempts"],
                "options": options,
                "no_input": self.no_input.action(),
            },
            "hours": {
                "enabled": data["hours_enabled"],
                "days": data["days"],
                "open": data["open"],
                "close": data["close"],
                "holidays": data["holidays"],
                "after_hours": self.after_hours.action(),
            },
        }
