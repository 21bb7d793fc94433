"""Keyset ("cursor") pagination for the big lists: the message log, opt-outs, consent, audit log.

A page is "the next N rows after this (timestamp, id)", newest first. Unlike OFFSET paging it
never counts the table (no COUNT(*), no page numbers), costs the same on page 1 and page
10,000 (it walks the (tenant, -created_at, -id) index), and rows arriving while someone pages
neither shift nor repeat what they see. The cursor is opaque to the browser: a signed token,
so a tampered or stale one is simply ignored (back to the newest page).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.db.models import Q, QuerySet

__all__ = ["DEFAULT_PAGE_SIZE", "KeysetPage", "keyset_page"]

DEFAULT_PAGE_SIZE = 50
OLDER = "o"
NEWER = "n"


@dataclass(frozen=True)
class KeysetPage:
    rows: list
    older_cursor: str | None  # None: this is the oldest page
    newer_cursor: str | None  # None: this is the newest page

    @property
    def is_paginated(self) -> bool:
        return bool(self.older_cursor or self.newer_cursor)


def _salt(qs: QuerySet, field: str) -> str:
    return f"messaging.keyset:{qs.model._meta.label_lower}:{field}"


def _encode(qs: QuerySet, field: str, row, direction: str) -> str:
    return signing.dumps({"k": getattr(row, field).isoformat(), "i": row.pk, "d": direction}, salt=_salt(qs, field))


def _decode(qs: QuerySet, field: str, cursor: str) -> tuple[datetime, int, str] | None:
    try:
        data = signing.loads(cursor, salt=_salt(qs, field))
        return datetime.fromisoformat(data["k"]), int(data["i"]), data["d"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def keyset_page(
    qs: QuerySet, *, cursor: str | None, field: str = "created_at", size: int = DEFAULT_PAGE_SIZE
) -> KeysetPage:
    """One page of `qs` ordered by (`field`, id) descending, starting after/before `cursor`.

    Fetches `size + 1` rows to learn whether another page exists in that direction; the other
    direction is known from having a cursor at all.
    """
    decoded = _decode(qs, field, cursor) if cursor else None
    newest_first = qs.order_by(f"-{field}", "-pk")
    if decoded is None:
        rows = list(newest_first[: size + 1])
        return _page(qs, field, rows[:size], older=len(rows) > size, newer=False)

    key, pk, direction = decoded
    # "(field, id) after the cursor" as a plain range on `field` (the index's range condition,
    # where the scan starts) plus the tie-break on id as a filter within it: PostgreSQL does
    # not start an index scan from an OR.
    if direction == OLDER:
        after = Q(**{f"{field}__lte": key}) & (Q(**{f"{field}__lt": key}) | Q(pk__lt=pk))
        rows = list(newest_first.filter(after)[: size + 1])
        return _page(qs, field, rows[:size], older=len(rows) > size, newer=True)

    before = Q(**{f"{field}__gte": key}) & (Q(**{f"{field}__gt": key}) | Q(pk__gt=pk))
    rows = list(qs.filter(before).order_by(field, "pk")[: size + 1])
    if len(rows) <= size:
        # Back at the top: show the newest page in full rather than a short one.
        return keyset_page(qs, cursor=None, field=field, size=size)
    rows = rows[:size]
    rows.reverse()
    return _page(qs, field, rows, older=True, newer=True)


def _page(qs: QuerySet, field: str, rows: list, *, older: bool, newer: bool) -> KeysetPage:
    return KeysetPage(
        rows=rows,
        older_cursor=_encode(qs, field, rows[-1], OLDER) if older and rows else None,
        newer_cursor=_encode(qs, field, rows[0], NEWER) if newer and rows else None,
    )
