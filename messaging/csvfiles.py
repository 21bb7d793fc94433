"""Reading an uploaded CSV, one way for every upload: bulk-send recipients and the opt-out and
consent imports.

What people upload comes from Excel as often as from scripts, so the reader is forgiving where
it is safe and explicit where it is not: a UTF-8 BOM is dropped, the separator is the one the
header row uses (Excel writes ";" in many locales; sniffing the data instead is fooled by commas
and semicolons inside quoted texts), header names are compared case- and spacing-insensitively,
blank lines are skipped and short rows padded. A file that is not UTF-8, empty, too large or too
long is refused as a whole with a message saying what to do.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["CsvFileError", "CsvTable", "csv_column_name", "csv_open"]

_DELIMITERS = (",", ";", "\t")


class CsvFileError(ValueError):
    """The file as a whole cannot be read; the message is for the person who uploaded it."""


def csv_column_name(raw: str) -> str:
    """A header cell as a column name: "First Name", "first-name" and "first_name" are one."""
    return raw.strip().lower().replace(" ", "_").replace("-", "_")


@dataclass
class CsvTable:
    """An uploaded CSV opened for reading: its normalised header, then its data rows."""

    header: list[str]
    max_rows: int
    split_into: str  # what to split a too-long file into, for the message: "imports"
    _reader: Iterator[list[str]] = field(repr=False)
    rows_read: int = 0
    #: Set when the file has more than `max_rows` data rows; reading stops there.
    error: str = ""

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, stripped values padded to the header's width) per non-blank row."""
        width = len(self.header)
        for values in self._reader:
            if not any(v.strip() for v in values):
                continue  # blank line
            self.rows_read += 1
            if self.rows_read > self.max_rows:
                self.error = f"More than {self.max_rows:,} rows: split the file into several {self.split_into}."
                return
            values = [v.strip() for v in values]
            if len(values) < width:
                values += [""] * (width - len(values))
            yield self._reader.line_num, values


def csv_open(content: bytes, *, max_rows: int, split_into: str, max_bytes: int | None = None) -> CsvTable:
    """Open `content` and read its header row (the first non-blank one), or raise CsvFileError."""
    if max_bytes is not None and len(content) > max_bytes:
        raise CsvFileError(f"The file is larger than {max_bytes // (1024 * 1024)} MB: split it.")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvFileError("The file is not UTF-8 text. In Excel, save it as “CSV UTF-8”.") from exc
    if not text.strip():
        raise CsvFileError("The file is empty.")
    first_line = text.lstrip().split("\n", 1)[0]
    delimiter = next((d for d in _DELIMITERS if d in first_line), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [csv_column_name(h) for h in next((r for r in reader if any(map(str.strip, r))), [])]
    return CsvTable(header=header, max_rows=max_rows, split_into=split_into, _reader=reader)
