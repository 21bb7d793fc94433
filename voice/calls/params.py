"""Reading a Twilio voice webhook's fields: made storable the way messaging's are (NULs
replaced, over-long fields cut and flagged), plus the voice fields' own widths and shapes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from messaging.intake.params import TRUNCATED, param_int, param_text, params_storable

__all__ = ["CALL_SID_SHAPE", "RECORDING_SID_SHAPE", "param_int", "param_text", "param_time", "voice_params_storable"]

#: Twilio's SIDs: anything else is not a call or recording of Twilio's (the view answers 400).
CALL_SID_SHAPE = re.compile(r"CA[0-9a-f]{32}")
RECORDING_SID_SHAPE = re.compile(r"RE[0-9a-f]{32}")

#: Voice fields stored in fixed-width columns (`Call`, `CallEvent`, `Recording`).
VOICE_FIELD_WIDTHS: dict[str, int] = {"AnsweredBy": 24, "RecordingSource": 32, "RecordingStatus": 16}


def voice_params_storable(params: Mapping) -> tuple[dict[str, str], dict[str, list[str]]]:
    """`messaging.intake.params.params_storable`, then the voice columns' widths."""
    clean, flags = params_storable(params)
    cut = []
    for name, width in VOICE_FIELD_WIDTHS.items():
        value = clean.get(name, "").strip()
        if len(value) > width:
            clean[name] = value[:width]
            cut.append(name)
    if cut:
        flags = {**flags, TRUNCATED: [*flags.get(TRUNCATED, []), *cut]}
    return clean, flags


def param_time(params: Mapping, name: str) -> datetime | None:
    """An RFC 2822 time field (`Timestamp`, `RecordingStartTime`), or None when unreadable."""
    text = param_text(params, name)
    if not text or len(text) > 64:
        return None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo is not None else None
