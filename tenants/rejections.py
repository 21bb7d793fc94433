"""The per-tenant daily counter of rejected webhooks, kept cheap under a flood.

Every refused webhook is counted, but a database write per refusal would let a flood of
unsigned requests become a flood of writes. So a refusal only bumps a pending counter in the
shared cache (an atomic increment per tenant, reason and day), and the pending counts move to
`WebhookRejection` at most once per `FLUSH_SECONDS` per tenant (the first refusal after the
interval does it), plus on every alert check and daily purge, so nothing waits long.

Readers add what is still pending to the stored rows, so support's overview, the settings page
and the spike alert show the same figures as a write per refusal did. Moving a count claims it
with an atomic decrement first, so two flushers never store the same refusals twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import Tenant, WebhookRejection

logger = logging.getLogger("commsportal.webhooks")

__all__ = [
    "FLUSH_SECONDS",
    "webhook_rejection_count",
    "webhook_rejections_flush",
    "webhook_rejections_flush_all",
    "webhook_rejections_pending",
]

#: At most one flush per tenant in this many seconds.
FLUSH_SECONDS = 60
#: Pending counts outlive a missed flush (the daily purge flushes too) without piling up.
PENDING_TTL_SECONDS = 3 * 24 * 3600
#: Days whose counts can still be pending: today and yesterday (a flood across midnight).
PENDING_DAYS = 2

_REASONS = tuple(WebhookRejection.Reason.values)


def _pending_key(*, tenant_id: int | None, reason: str, day: date) -> str:
    return f"webhook-rejections:v1:{day.isoformat()}:{tenant_id or 0}:{reason}"


def _flush_lock_key(tenant_id: int | None) -> str:
    return f"webhook-rejections:v1:flush:{tenant_id or 0}"


def _pending_days(now: datetime) -> list[date]:
    today = now.date()
    return [today - timedelta(days=n) for n in range(PENDING_DAYS)]


def webhook_rejection_count(*, tenant_id: int | None, reason: str) -> None:
    """Count one refused webhook for this tenant (None: no known AccountSid) and reason.

    One cache increment; the database is written only when this tenant's flush interval has
    passed. Without a reachable cache the refusal is stored directly, as it must not be lost.
    """
    now = timezone.now()
    key = _pending_key(tenant_id=tenant_id, reason=reason, day=now.date())
    try:
        cache.add(key, 0, timeout=PENDING_TTL_SECONDS)
        cache.incr(key)
        # A file-based cache's incr rewrites the entry with the default (5 min) timeout.
        cache.touch(key, PENDING_TTL_SECONDS)
        due = cache.add(_flush_lock_key(tenant_id), 1, timeout=FLUSH_SECONDS)
    except Exception:  # noqa: BLE001 - any cache failure: fall back to the database
        logger.warning("twilio.webhook.rejection_cache_unavailable", exc_info=True)
        _bucket_add(tenant_id=tenant_id, reason=reason, day=now.date(), count=1, at=now)
        return
    if due:
        webhook_rejections_flush(tenant_id=tenant_id)


def webhook_rejections_flush(*, tenant_id: int | None) -> int:
    """Move this tenant's pending counts to the database; returns how many refusals moved."""
    now = timezone.now()
    keys = {
        _pending_key(tenant_id=tenant_id, reason=reason, day=day): (reason, day)
        for day in _pending_days(now)
        for reason in _REASONS
    }
    moved = 0
    for key, count in cache.get_many(list(keys)).items():
        if not count:
            continue
        try:
            cache.decr(key, count)  # claim exactly these; refusals counted meanwhile stay pending
        except ValueError:
            continue  # expired between the read and the claim
        reason, day = keys[key]
        try:
            _bucket_add(tenant_id=tenant_id, reason=reason, day=day, count=count, at=now)
        except Exception:
            cache.incr(key, count)  # give the claim back for the next flush
            raise
        moved += count
    return moved


def webhook_rejections_flush_all() -> int:
    """Flush every tenant's pending counts (periodic jobs call this before reading)."""
    tenant_ids: list[int | None] = [None, *Tenant.objects.values_list("id", flat=True)]
    return sum(webhook_rejections_flush(tenant_id=tenant_id) for tenant_id in tenant_ids)


def webhook_rejections_pending(*, tenant_ids: Iterable[int | None]) -> dict[tuple[int | None, str, date], int]:
    """Counts not yet in the database, as {(tenant id, reason, day): count}, for readers."""
    keys = {
        _pending_key(tenant_id=tenant_id, reason=reason, day=day): (tenant_id, reason, day)
        for tenant_id in tenant_ids
        for day in _pending_days(timezone.now())
        for reason in _REASONS
    }
    try:
        found = cache.get_many(list(keys))
    except Exception:  # noqa: BLE001 - an unreachable cache shows the stored figures only
        logger.warning("twilio.webhook.rejection_cache_unavailable", exc_info=True)
        return {}
    return {keys[key]: count for key, count in found.items() if count}


def _bucket_add(*, tenant_id: int | None, reason: str, day: date, count: int, at: datetime) -> None:
    """Add `count` to one (tenant, reason, day) row: a race-safe upsert."""
    bucket = WebhookRejection.objects.filter(tenant_id=tenant_id, reason=reason, day=day)
    if bucket.update(count=F("count") + count, last_seen_at=at):
        return
    try:
        with transaction.atomic():
            WebhookRejection.objects.create(tenant_id=tenant_id, reason=reason, day=day, count=count, last_seen_at=at)
    except IntegrityError:  # another flush created the row first
        bucket.update(count=F("count") + count, last_seen_at=at)
