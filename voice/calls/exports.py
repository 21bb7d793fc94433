"""The call log's CSV export. Columns are a contract with operators' scripts: never rename or
reorder them. Rows stream from a server-side cursor (as `messaging.exports`); numbers go
through `show`, masked for support staff."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.db.models import QuerySet

from messaging.exports import CHUNK_SIZE
from tenants.exports import IsoUtc

from ..models import Call

__all__ = ["CALL_COLUMNS", "call_rows"]

CALL_COLUMNS = ("sid", "direction", "from", "to", "status", "duration", "created_at")


def call_rows(qs: QuerySet[Call], *, show: Callable[[str], str]) -> Iterator[tuple]:
    values = qs.values_list("sid", "direction", "from_number", "to_number", "status", "duration", IsoUtc("created_at"))
    for sid, direction, from_, to, status, duration, created in values.iterator(CHUNK_SIZE):
        yield sid or "", direction, show(from_), show(to), status, "" if duration is None else duration, created
