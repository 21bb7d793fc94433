"""Reads for messaging, always scoped to one tenant."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import OuterRef, Subquery

from tenants.models import Tenant

from .models import ConsentEvent, OptOutEvent


def opt_out_latest(*, tenant: Tenant, phone: str) -> OptOutEvent | None:
    """The number's latest opt-out ledger event (its current state), or None if it has none."""
    return OptOutEvent.objects.for_tenant(tenant).filter(phone=phone).order_by("-created_at", "-id").first()


def is_opted_out(*, tenant: Tenant, phone: str) -> bool:
    latest = opt_out_latest(tenant=tenant, phone=phone)
    return latest is not None and latest.action == OptOutEvent.Action.OPT_OUT


def opted_out_phones(*, tenant: Tenant, phones: Iterable[str]) -> set[str]:
    """Which of `phones` are currently opted out, in one query (for bulk gating and imports)."""
    phones = list(set(phones))
    if not phones:
        return set()
    latest = (
        OptOutEvent.objects.for_tenant(tenant)
        .filter(phone=OuterRef("phone"))
        .order_by("-created_at", "-id")
        .values("id")[:1]
    )
    return set(
        OptOutEvent.objects.for_tenant(tenant)
        .filter(phone__in=phones, id=Subquery(latest), action=OptOutEvent.Action.OPT_OUT)
        .values_list("phone", flat=True)
    )


def opt_out_current_list(*, tenant: Tenant, search: str = "", state: str = ""):
    """One row per number: its latest opt-out event, newest first (the derived current state)."""
    latest = (
        OptOutEvent.objects.for_tenant(tenant)
        .filter(phone=OuterRef("phone"))
        .order_by("-created_at", "-id")
        .values("id")[:1]
    )
    qs = OptOutEvent.objects.for_tenant(tenant).filter(id=Subquery(latest))
    if search:
        qs = qs.filter(phone__contains=search)
    if state in (OptOutEvent.Action.OPT_OUT, OptOutEvent.Action.OPT_IN):
        qs = qs.filter(action=state)
    return qs.select_related("actor").order_by("-created_at", "-id")


def consent_latest_by_purpose(*, tenant: Tenant, phone: str) -> dict[str, ConsentEvent]:
    """purpose -> latest consent event for this number."""
    result: dict[str, ConsentEvent] = {}
    for event in ConsentEvent.objects.for_tenant(tenant).filter(phone=phone).order_by("-captured_at", "-id"):
        result.setdefault(event.purpose, event)
    return result


def consent_granted_purposes(*, tenant: Tenant, phone: str) -> list[str]:
    return [p for p, e in consent_latest_by_purpose(tenant=tenant, phone=phone).items() if e.action == "granted"]
