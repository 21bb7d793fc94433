"""The messaging CSV exports: the message log, opt-outs, consent and a bulk send's recipients.

Each function turns a tenant-scoped queryset (the list page's filters already applied) into the
rows of its export, in the export's fixed column order. Columns are a contract with operators'
scripts: never rename or reorder them. Rows are read with `.values_list(...).iterator()`, a
server-side cursor on PostgreSQL, so an export of millions of rows runs in constant memory;
the view streams them (`tenants.exports.csv_streaming_response`). Numbers go through `show`:
masked for support staff, as they are on every page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.db.models import QuerySet
from django.db.models.functions import Coalesce

from tenants.exports import IsoUtc

from .models import ConsentEvent, Message, OptOutEvent

__all__ = [
    "BULK_RECIPIENT_COLUMNS",
    "CHUNK_SIZE",
    "CONSENT_COLUMNS",
    "MESSAGE_COLUMNS",
    "OPT_OUT_COLUMNS",
    "bulk_recipient_rows",
    "consent_rows",
    "message_rows",
    "opt_out_rows",
]

#: Rows fetched from the database per round trip while streaming.
CHUNK_SIZE = 2000

MESSAGE_COLUMNS = ("sid", "direction", "from", "to", "status", "error_code", "segments", "created_at", "updated_at")
OPT_OUT_COLUMNS = ("phone", "state", "keyword", "source", "changed_at")
CONSENT_COLUMNS = ("phone", "purpose", "state", "method", "source", "captured_at", "revoked_at")
BULK_RECIPIENT_COLUMNS = ("phone", "status", "error_code", "gate_reason", "sid")

OPT_OUT_STATES = {OptOutEvent.Action.OPT_OUT: "opted_out", OptOutEvent.Action.OPT_IN: "opted_in"}

Show = Callable[[str], str]


def _blank(value) -> object:
    return "" if value is None else value


def message_rows(qs: QuerySet[Message], *, show: Show) -> Iterator[tuple]:
    """Times come formatted from the database (`IsoUtc`). `updated_at` is the last status change,
    or the creation time while there was none."""
    fields = ("sid", "direction", "from_number", "to_number", "status", "error_code", "num_segments")
    values = qs.values_list(*fields, IsoUtc("created_at"), IsoUtc(Coalesce("status_updated_at", "created_at")))
    for sid, direction, from_, to, status, error_code, segments, created, updated in values.iterator(CHUNK_SIZE):
        yield (
            sid or "",
            direction,
            show(from_),
            show(to),
            status,
            _blank(error_code),
            _blank(segments),
            created,
            updated,
        )


def opt_out_rows(qs: QuerySet[OptOutEvent], *, show: Show) -> Iterator[tuple]:
    """`qs` holds each number's latest opt-out event (`opt_out_current_list`): its current state."""
    values = qs.values_list("phone", "action", "keyword", "source", IsoUtc("created_at"))
    for phone, action, keyword, source, changed in values.iterator(CHUNK_SIZE):
        yield show(phone), OPT_OUT_STATES.get(action, action), keyword, source, changed


def consent_rows(qs: QuerySet[ConsentEvent], *, show: Show, show_text: Show = str) -> Iterator[tuple]:
    """`qs` holds each (number, purpose)'s latest consent event (`consent_current_list`).
    `source` is free text (a form URL may carry the number): it goes through `show_text`.

    A granted row's `captured_at` is that grant; a revoked row's `revoked_at` is the revocation
    and its `captured_at` the grant it ended (empty if none is on record). Method and source
    are the latest event's: how the current state came about.
    """
    fields = ("phone", "purpose", "action", "method", "source")
    values = qs.values_list(*fields, IsoUtc("captured_at"), IsoUtc("granted_at"))
    for phone, purpose, action, method, source, captured, granted in values.iterator(CHUNK_SIZE):
        revoked = action == ConsentEvent.Action.REVOKED
        yield (
            show(phone),
            purpose,
            action,
            method,
            show_text(source),
            (granted or "") if revoked else captured,
            captured if revoked else "",
        )


def bulk_recipient_rows(qs: QuerySet[Message], *, show: Show) -> Iterator[tuple]:
    """`qs` holds the bulk send's messages: one per recipient, with its outcome so far."""
    values = qs.values_list("to_number", "status", "error_code", "gate_reason", "sid")
    for phone, status, error_code, gate_reason, sid in values.iterator(CHUNK_SIZE):
        yield show(phone), status, _blank(error_code), gate_reason, sid or ""
