"""SMS encoding and segment counting, as carriers (and Twilio's bill) count them.

Twilio charges per segment, so the compose screen shows how many segments a text will use and
warns when one character (a curly quote, an emoji) switches the whole message to UCS-2 and
more than doubles the cost.

Rules (GSM 03.38 / 3GPP TS 23.038):

* GSM-7 when every character is in the basic table or the extension table; extension
  characters (``^ { } \\ [ ~ ] | €`` and form feed) take 2 septets (escape + character).
  One segment holds 160 septets; a concatenated message holds 153 per segment (the rest is the
  concatenation header).
* UCS-2 otherwise, counted in UTF-16 code units, so an emoji outside the BMP counts 2.
  70 units single, 67 per segment concatenated.
* An escape pair or a surrogate pair is never split across two segments: when it does not
  fit, the segment is closed early. This matches Twilio's segment calculator and is why
  ``ceil(length / 153)`` can be one too low.
* Only the table's own characters count as GSM-7: lower-case ``ç`` is treated as UCS-2 even
  though some gateways map it to ``Ç``, so the estimate errs towards more segments, not fewer.
* Empty text is 0 segments: there is nothing to send (a media-only MMS has no text segments).
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "GSM7",
    "GSM7_BASIC_CHARS",
    "GSM7_EXTENSION_CHARS",
    "UCS2",
    "sms_encoding",
    "sms_length",
    "sms_segments",
]

GSM7: Literal["GSM-7"] = "GSM-7"
UCS2: Literal["UCS-2"] = "UCS-2"

#: GSM 03.38 basic character set (the escape code 0x1B itself is not a text character).
GSM7_BASIC_CHARS: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: each costs an escape septet plus its own.
GSM7_EXTENSION_CHARS: frozenset[str] = frozenset("\f^{}\\[~]|€")

_GSM7_SINGLE, _GSM7_MULTI = 160, 153
_UCS2_SINGLE, _UCS2_MULTI = 70, 67


def sms_encoding(text: str) -> Literal["GSM-7", "UCS-2"]:
    """``"GSM-7"`` when every character fits the GSM 03.38 tables, else ``"UCS-2"``."""
    allowed = GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS
    return GSM7 if all(ch in allowed for ch in text) else UCS2


def _units(text: str, encoding: str) -> list[int]:
    """Size of each character in the encoding's units (septets or UTF-16 code units)."""
    if encoding == GSM7:
        return [2 if ch in GSM7_EXTENSION_CHARS else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def sms_length(text: str) -> int:
    """Length of ``text`` in its encoding's units: septets for GSM-7, code units for UCS-2."""
    return sum(_units(text, sms_encoding(text)))


def sms_segments(text: str) -> int:
    """Number of SMS segments ``text`` is sent as (0 for empty text)."""
    if not text:
        return 0
    encoding = sms_encoding(text)
    units = _units(text, encoding)
    single, multi = (_GSM7_SINGLE, _GSM7_MULTI) if encoding == GSM7 else (_UCS2_SINGLE, _UCS2_MULTI)
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > multi:  # never split an escape or surrogate pair
            segments, used = segments + 1, 0
        used += size
    return segments
