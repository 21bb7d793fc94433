"""CSV downloads that are safe to open in a spreadsheet.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets; customers' texts and tenant names reach our exports, so such a
cell is written with a leading apostrophe (OWASP's "CSV injection" advice), which spreadsheets
show as text. Plain numbers (an E.164 phone number, a masked one, a negative count) are left
as they are: without letters or brackets no function can be called.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d[\d .*]*")


def spreadsheet_safe(value):
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Iterable) -> list:
    return [spreadsheet_safe(v) for v in values]
