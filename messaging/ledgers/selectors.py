"""Reads of the opt-out and consent ledgers, reviews and keywords, always scoped to one tenant.

Whether a number may be messaged at all is `messaging.ledgers.reachability`'s question, not
the ledger's: an erased number has no ledger rows left but stays blocked."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from tenants.models import Tenant

from ..models import ConsentEvent, OptOutEvent, RevocationReview, TenantKeyword

#: Numbers per query when looking many up at once (imports): well under SQLite's variable limit.
_CHUNK = 500


def opt_out_latest(*, tenant: Tenant, phone: str) -> OptOutEvent | None:
    """The number's latest opt-out ledger event (its current state), or None if it has none."""
    return OptOutEvent.objects.for_tenant(tenant).filter(phone=phone).order_by("-created_at", "-id").first()


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


def opt_out_latest_for_phones(*, tenant: Tenant, phones: Iterable[str]) -> dict[str, OptOutEvent]:
    """phone -> its latest opt-out ledger event, for many numbers in one query per 500."""
    phones = sorted(set(phones))
    latest = (
        OptOutEvent.objects.for_tenant(tenant)
        .filter(phone=OuterRef("phone"))
        .order_by("-created_at", "-id")
        .values("id")[:1]
    )
    result: dict[str, OptOutEvent] = {}
    for start in range(0, len(phones), _CHUNK):
        chunk = phones[start : start + _CHUNK]
        for event in OptOutEvent.objects.for_tenant(tenant).filter(phone__in=chunk, id=Subquery(latest)):
            result[event.phone] = event
    return result


def consent_latest_for_phones(*, tenant: Tenant, phones: Iterable[str]) -> dict[tuple[str, str], ConsentEvent]:
    """(phone, purpose) -> latest consent event, for many numbers in one query per 500."""
    phones = sorted(set(phones))
    result: dict[tuple[str, str], ConsentEvent] = {}
    for start in range(0, len(phones), _CHUNK):
        chunk = phones[start : start + _CHUNK]
        events = ConsentEvent.objects.for_tenant(tenant).filter(phone__in=chunk).order_by("-captured_at", "-id")
        for event in events:
            result.setdefault((event.phone, event.purpose), event)
    return result


def consent_event_list(
    *, tenant: Tenant, phone: str = "", phone_suffix: str = "", purpose: str = "", action: str = "", method: str = ""
) -> QuerySet[ConsentEvent]:
    """The consent ledger, newest capture first, optionally narrowed."""
    qs = ConsentEvent.objects.for_tenant(tenant).select_related("disclosure", "captured_by")
    if phone:
        qs = qs.filter(phone=phone)
    elif phone_suffix:
        qs = qs.filter(phone__endswith=phone_suffix)
    if purpose:
        qs = qs.filter(purpose=purpose)
    if action:
        qs = qs.filter(action=action)
    if method:
        qs = qs.filter(method=method)
    return qs.order_by("-captured_at", "-id")


def revocation_review_lists(*, tenant: Tenant, decided_limit: int = 100) -> tuple[list, list]:
    """(open reviews, most urgent deadline first; the latest decided ones, newest first)."""
    base = RevocationReview.objects.for_tenant(tenant).select_related("message", "decided_by")
    open_reviews = list(base.filter(status=RevocationReview.Status.OPEN).order_by("deadline_at", "id"))
    decided = list(base.exclude(status=RevocationReview.Status.OPEN).order_by("-decided_at", "-id")[:decided_limit])
    return open_reviews, decided


def revocation_overdue_count(*, tenant: Tenant) -> int:
    """Open reviews past their 10-business-day deadline (the banner on every tenant page)."""
    return (
        RevocationReview.objects.for_tenant(tenant)
        .filter(status=RevocationReview.Status.OPEN, deadline_at__lt=timezone.now())
        .count()
    )


def tenant_keyword_list(*, tenant: Tenant) -> QuerySet[TenantKeyword]:
    return TenantKeyword.objects.for_tenant(tenant).order_by("kind", "word")


def consent_current_list(
    *, tenant: Tenant, phone: str = "", phone_suffix: str = "", purpose: str = "", action: str = "", method: str = ""
) -> QuerySet[ConsentEvent]:
    """One row per number and purpose: its latest consent event (the current state), newest
    first, narrowed like `consent_event_list` but on that latest event. A revoked row carries
    `granted_at`, the capture time of the last grant before the revocation (None if never granted).
    """
    scoped = ConsentEvent.objects.for_tenant(tenant)
    same = {"phone": OuterRef("phone"), "purpose": OuterRef("purpose")}
    latest = scoped.filter(**same).order_by("-captured_at", "-id").values("id")[:1]
    last_grant = (
        scoped.filter(**same, action=ConsentEvent.Action.GRANTED, captured_at__lte=OuterRef("captured_at"))
        .order_by("-captured_at", "-id")
        .values("captured_at")[:1]
    )
    qs = scoped.filter(id=Subquery(latest))
    if phone:
        qs = qs.filter(phone=phone)
    elif phone_suffix:
        qs = qs.filter(phone__endswith=phone_suffix)
    if purpose:
        qs = qs.filter(purpose=purpose)
    if action:
        qs = qs.filter(action=action)
    if method:
        qs = qs.filter(method=method)
    return qs.annotate(granted_at=Subquery(last_grant)).order_by("-captured_at", "-id")
