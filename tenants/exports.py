"""CSV downloads that are safe to open in a spreadsheet.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets; customers' texts and tenant names reach our exports, so such a
cell is written with a leading apostrophe (OWASP's "CSV injection" advice), which spreadsheets
show as text. Plain numbers (an E.164 phone number, a masked one, a negative count) are left
as they are: without letters or brackets no function can be called.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

from django.http import StreamingHttpResponse

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d[\d .*]*")


def spreadsheet_safe(value):
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Iterable) -> list:
    return [spreadsheet_safe(v) for v in values]


# --- Streamed CSV downloads -----------------------------------------------------------------------

#: Rows written per chunk handed to the server: big enough that the per-chunk overhead vanishes,
#: small enough that a chunk stays a few hundred kilobytes.
ROWS_PER_CHUNK = 1000


def iso_utc(value: datetime | None) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`, the one time format of every export (empty for no time)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Line:
    """A write-only "file" for csv.writer that hands back what was written instead of keeping it."""

    def write(self, value: str) -> str:
        return value


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[str]:
    """The header line, then the rows (made spreadsheet-safe) in chunks of ROWS_PER_CHUNK lines.

    Only one chunk is held at a time, so memory stays flat however many rows `rows` yields.
    """
    writer = csv.writer(_Line())
    yield writer.writerow(header)
    chunk: list[str] = []
    for row in rows:
        chunk.append(writer.writerow(safe_row(row)))
        if len(chunk) >= ROWS_PER_CHUNK:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def csv_streaming_response(*, filename: str, header: Sequence[str], rows: Iterable[Sequence]) -> StreamingHttpResponse:
    """A CSV download streamed as `rows` is consumed: no list of all rows, no count up front.

    `Cache-Control: no-store` because exports hold personal data that no browser or proxy keeps.
    """
    response = StreamingHttpResponse(csv_chunks(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
