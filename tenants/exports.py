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
from itertools import islice

from django.db.models import CharField, Func
from django.http import StreamingHttpResponse

_FORMULA_START = frozenset(("=", "+", "-", "@", "\t", "\r"))
_PLAIN_NUMBER = re.compile(r"[+-]?\d[\d .*]*")


def spreadsheet_safe(value):
    # `value[:1] in` a set: the cheap test first, as exports run it on every cell of millions.
    if isinstance(value, str) and value[:1] in _FORMULA_START and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Iterable) -> list:
    # Only text that starts like a formula needs the full test: the rest passes untouched, so a
    # streamed export pays one cheap check per cell.
    return [spreadsheet_safe(v) if isinstance(v, str) and v[:1] in _FORMULA_START else v for v in values]


# --- Streamed CSV downloads -----------------------------------------------------------------------

#: Rows written per chunk handed to the server: big enough that the per-chunk overhead vanishes,
#: small enough that a chunk stays a few hundred kilobytes.
ROWS_PER_CHUNK = 1000


def iso_utc(value: datetime | None) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`, the one time format of every export (empty for no time)."""
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat(timespec="seconds")[:19] + "Z"


class IsoUtc(Func):
    """A timestamp column as `iso_utc` writes it, formatted by the database.

    Exports select this instead of the datetime: building millions of Python datetimes only to
    format them again is most of a streamed export's time. NULL stays NULL.
    """

    output_field = CharField()
    arity = 1

    def as_sql(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler,
            connection,
            template="to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            **extra_context,
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler, connection, template="strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', %(expressions)s)", **extra_context
        )


class _Lines(list):
    """A "file" for csv.writer that collects the lines written until the chunk is handed on."""

    write = list.append


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[str]:
    """The header line, then the rows (made spreadsheet-safe) in chunks of ROWS_PER_CHUNK lines.

    Only one chunk is held at a time, so memory stays flat however many rows `rows` yields.
    """
    lines = _Lines()
    writer = csv.writer(lines)
    writer.writerow(header)
    rows = iter(rows)
    while True:
        writer.writerows(map(safe_row, islice(rows, ROWS_PER_CHUNK)))
        if not lines:
            return
        yield "".join(lines)
        lines.clear()


def csv_streaming_response(*, filename: str, header: Sequence[str], rows: Iterable[Sequence]) -> StreamingHttpResponse:
    """A CSV download streamed as `rows` is consumed: no list of all rows, no count up front.

    `Cache-Control: no-store` because exports hold personal data that no browser or proxy keeps.
    """
    response = StreamingHttpResponse(csv_chunks(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
