"""POST data for the call flow editor (voice/flows/forms.py), shared by the page tests, the
isolation matrix and the audit coverage."""

from __future__ import annotations


def action_fields(prefix: str, **values) -> dict:
    fields = {
        "type": "",
        "target": "",
        "caller_id": "number",
        "ring_timeout": "20",
        "audio_kind": "say",
        "audio_text": "",
        "audio_url": "",
        "then": "hangup",
        "prompt": "",
        "max_length": "120",
        **values,
    }
    return {f"{prefix}-{name}": value for name, value in fields.items()}


def flow_form_post(*, options: list[dict] | None = None, **flow) -> dict:
    """A valid editor submission: key 1 forwards, key 9 opts out; `flow` overrides flow fields,
    `options` the keys (each a dict of action fields plus `digit`)."""
    options = (
        options
        if options is not None
        else [{"digit": "1", "type": "forward", "target": "+12125550199"}, {"digit": "9", "type": "opt_out"}]
    )
    data = {
        "flow-name": "Main line",
        "flow-voice": "Polly.Joanna",
        "flow-language": "en-US",
        "flow-greeting_kind": "say",
        "flow-greeting_text": "Thanks for calling Acme.",
        "flow-greeting_url": "",
        "flow-prompt_kind": "say",
        "flow-prompt_text": "Press 1 for sales, 9 to stop our calls and texts.",
        "flow-prompt_url": "",
        "flow-timeout": "5",
        "flow-attempts": "2",
        "flow-open": "09:00",
        "flow-close": "17:00",
        "options-TOTAL_FORMS": str(len(options)),
        "options-INITIAL_FORMS": "0",
        "options-MIN_NUM_FORMS": "0",
        "options-MAX_NUM_FORMS": "12",
        **action_fields("no_input", type="hangup"),
        **action_fields("after_hours"),
        "save": "1",
    }
    for index, option in enumerate(options):
        data.update(action_fields(f"options-{index}", **option))
    data.update({f"flow-{k}": v for k, v in flow.items()})
    return data
