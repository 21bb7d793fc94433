"""May we message this number? The one answer, asked by the gate, sending, status and inbound
webhooks, revocations, the number history and the ledger pages.

A number is off limits to a tenant when its latest opt-out ledger event is an opt-out, or when it
was erased under GDPR. An erased number's ledger rows carry a marker instead of the number, so
the ledger alone would call it reachable again: only its keyed hash (`tenants.retention`) still
blocks it. Every caller asks here, so no caller can forget the erased ones.

The batch form is set-based (a constant number of queries whatever the number of phones), which
the bulk-send benchmark relies on.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from tenants.models import Tenant
from tenants.retention import suppressed_phones

from ..models import OptOutEvent

__all__ = ["IN_LIST_LIMIT", "latest_actions", "ledger_for_phones", "number_is_opted_out", "numbers_opted_out"]

#: Up to this many distinct numbers a ledger is read with `phone IN (...)`; above it, the
#: tenant's whole current state is read once and intersected in memory.
IN_LIST_LIMIT = 2000


def ledger_for_phones(queryset: QuerySet, phones: set[str]) -> QuerySet:
    """Filter by the numbers for small batches; read the tenant's whole table for large ones,
    which keeps the query count constant without huge `IN` lists."""
    return queryset.filter(phone__in=phones) if len(phones) <= IN_LIST_LIMIT else queryset


def latest_actions(rows: Iterable[tuple[str, str]]) -> dict[str, str]:
    """phone -> action of its latest event, from (phone, action) rows ordered oldest first."""
    latest: dict[str, str] = {}
    for phone, action in rows:
        latest[phone] = action
    return latest


def numbers_opted_out(*, tenant: Tenant, phones: Iterable[str]) -> set[str]:
    """Which of `phones` (E.164) `tenant` may not message: opted out, or erased.

    Two queries at most, whatever the number of phones (one for the ledger, one for the
    suppression hashes, none when the tenant never erased a number).
    """
    phones = {p for p in phones if p}
    if not phones:
        return set()
    rows = (
        ledger_for_phones(OptOutEvent.objects.for_tenant(tenant), phones)
        .order_by("phone", "created_at", "id")
        .values_list("phone", "action")
    )
    opted_out = {p for p, a in latest_actions(rows).items() if a == OptOutEvent.Action.OPT_OUT and p in phones}
    return opted_out | suppressed_phones(tenant=tenant, phones=phones)


def number_is_opted_out(*, tenant: Tenant, phone: str) -> bool:
    """Whether `tenant` may not message `phone`: the single-number form of `numbers_opted_out`."""
    return bool(numbers_opted_out(tenant=tenant, phones=[phone]))
