"""One CSV reader (`messaging.csvfiles`) for bulk sends and both ledger imports."""

from __future__ import annotations

import pytest

from messaging.csvfiles import CsvFileError, csv_open
from messaging.delivery.bulk.upload import bulk_csv_read
from messaging.ledgers.imports import ImportReport, _read

BODY = "Hi {{first_name}}"


def rows(content: bytes, **kwargs):
    table = csv_open(content, max_rows=kwargs.pop("max_rows", 10), split_into="imports", **kwargs)
    return table.header, list(table.rows()), table


def test_bom_header_names_blank_lines_and_short_rows():
    header, found, _ = rows("\ufeff\nPhone , First-Name,When\n\n+14155550123, Ana \n".encode())
    assert header == ["phone", "first_name", "when"]
    assert found == [(4, ["+14155550123", "Ana", ""])]


def test_the_header_row_decides_the_separator():
    """Bulk sends used to sniff the data, which quoted commas in a semicolon file fool."""
    content = b'phone;first_name\n+14155550123;"Smith, Ana; Jr"\n+14155550124;"Lee, Bo"\n'
    header, found, _ = rows(content)
    assert header == ["phone", "first_name"]
    assert [values for _, values in found] == [["+14155550123", "Smith, Ana; Jr"], ["+14155550124", "Lee, Bo"]]
    upload = bulk_csv_read(content=content, body=BODY)
    assert upload.recipients == [["+14155550123", ["Smith, Ana; Jr"]], ["+14155550124", ["Lee, Bo"]]]


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (b"", {}, "The file is empty."),
        (b"  \n\n", {}, "The file is empty."),
        ("phone\n+14155550123,Zoë\n".encode("latin-1"), {}, "The file is not UTF-8 text."),
        (b"phone\n" + b"+14155550123\n" * 100, {"max_bytes": 1024 * 1024 // 1024}, "The file is larger than"),
    ],
)
def test_file_errors(content, kwargs, message):
    with pytest.raises(CsvFileError, match=message):
        rows(content, **kwargs)


def test_row_limit_stops_reading_and_says_how_to_split():
    _, found, table = rows(b"phone\n+14155550123\n+14155550124\n+14155550125\n", max_rows=2)
    assert len(found) == 2 and table.error == "More than 2 rows: split the file into several imports."


def test_bulk_and_imports_give_the_same_file_errors():
    latin = "phone,first_name\n+14155550123,Zoë\n".encode("latin-1")
    report = ImportReport()
    assert _read(latin, report, known=("phone",), required=("phone",)) is None
    assert report.file_errors == bulk_csv_read(content=latin, body=BODY).file_errors
