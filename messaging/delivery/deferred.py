"""Deferred messages: the periodic release that re-checks due rows at the gate, and re-enqueues
rows whose task was lost. Long delays live in the database, never in Celery countdowns.

Deferred rows are the gate's (quiet hours, pacing of marketing) and the delivery task's own:
a message whose quick retries ran out while Twilio was unreachable
(`attempts.message_delivery_postpone`). Both are gated again here, so a message postponed by an
outage is not sent into quiet hours when Twilio comes back."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tenants.models import Tenant

from .. import statuses
from ..compliance.gate import gate_evaluate
from ..models import BulkSend, GateDecision, Message, Purpose
from .enqueue import UNQUEUED_REASON, deliveries_enqueue_on_commit

logger = logging.getLogger("commsportal.messaging")

__all__ = [
    "deferred_messages_release",
]


#: A pending message nobody has touched for this long (no lease, or a lease expired this long
#: ago) is enqueued again by the periodic release: its task was lost (broker down at enqueue,
#: worker died). Longer than the longest retry countdown, so a task waiting to retry is not
#: duplicated; duplicates would be harmless anyway (lease + idempotence).
STALE_AFTER = timedelta(minutes=5)


# --- Periodic pickup ----------------------------------------------------------------------------


def deferred_messages_release(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Periodic: re-gate deferred messages whose time has come, and re-enqueue lost ones.

    Cross-tenant on purpose (`all_tenants`). Due deferred rows (pending, decision defer,
    send_after <= now, oldest first, at most `limit`) are gated again in one batch per tenant
    and purpose: blocked, deferred anew, or released (decision send, send_after = now) and
    enqueued, except bulk-send rows, which go back to the bulk dispatcher. Then pending
    ``send`` rows nobody touched for `STALE_AFTER` (their task was lost, or their worker died
    and its lease ran out), or whose task could not be published at all (`UNQUEUED_REASON`,
    the broker was down), are enqueued again; reconciliation prevents a second send. Bulk rows
    never attempted are the dispatcher's and are left alone.

    Returns how many messages were released or re-enqueued.
    """
    now = now or timezone.now()
    to_enqueue: list[int] = []
    released = _deferred_release(now=now, limit=limit, to_enqueue=to_enqueue)
    stale_before = now - STALE_AFTER
    stale = (
        # Its task could not be published (broker down): enqueue it now, Redis is back if this runs.
        Q(failure_reason=UNQUEUED_REASON, send_claim="")
        | Q(send_claimed_until__lt=stale_before)
        | Q(send_claimed_until__isnull=True, send_after__lt=stale_before)
        | Q(send_claimed_until__isnull=True, send_after__isnull=True, created_at__lt=stale_before)
    )
    lost = Message.all_tenants.filter(
        stale,
        # Bulk rows only while their bulk send runs: a paused or cancelled send stays put.
        Q(bulk_send__isnull=True) | Q(send_attempts__gt=0, bulk_send__status=BulkSend.Status.RUNNING),
        direction=Message.Direction.OUTBOUND,
        status=statuses.PENDING,
        gate_decision=GateDecision.SEND,
        sid__isnull=True,
    )
    with transaction.atomic():
        lost_ids = list(lost.order_by("id").values_list("pk", flat=True)[:limit])
        if lost_ids:
            # Mark them touched so the next run doesn't enqueue them again before they run.
            lost.filter(pk__in=lost_ids).update(send_claim="", send_claimed_until=now)
            # Publishing again marks anew what still can't be published.
            Message.all_tenants.filter(pk__in=lost_ids, failure_reason=UNQUEUED_REASON).update(failure_reason="")
            logger.warning("message.send.requeued", extra={"count": len(lost_ids)})
        deliveries_enqueue_on_commit(to_enqueue + lost_ids)
    return released + len(lost_ids)


def _deferred_release(*, now: datetime, limit: int, to_enqueue: list[int]) -> int:
    due = list(
        Message.all_tenants.filter(
            direction=Message.Direction.OUTBOUND,
            status=statuses.PENDING,
            gate_decision=GateDecision.DEFER,
            send_after__lte=now,
            sid__isnull=True,
        )
        .order_by("send_after", "id")
        .values_list("pk", "tenant_id", "purpose", "to_number", "bulk_send_id")[:limit]
    )
    if not due:
        return 0
    groups: dict[tuple[int, str], list[tuple]] = defaultdict(list)
    for row in due:
        groups[(row[1], row[2] or Purpose.TRANSACTIONAL)].append(row)
    tenants = Tenant.objects.in_bulk({tenant_id for tenant_id, _ in groups})
    released = 0
    for (tenant_id, purpose), rows in groups.items():
        verdicts = gate_evaluate(tenant=tenants[tenant_id], recipients=[r[3] for r in rows], purpose=purpose, now=now)
        updates: dict[tuple, list[int]] = defaultdict(list)
        bulk_ids = {r[0] for r in rows if r[4] is not None}
        for row, (_, verdict) in zip(rows, verdicts, strict=True):
            updates[(verdict.decision, verdict.reason, verdict.send_after)].append(row[0])
        with transaction.atomic():
            for (decision, reason, send_after), ids in updates.items():
                still_deferred = Message.all_tenants.filter(
                    pk__in=ids, status=statuses.PENDING, gate_decision=GateDecision.DEFER, sid__isnull=True
                )
                if decision == GateDecision.SEND:
                    changed = list(still_deferred.values_list("pk", flat=True))
                    Message.all_tenants.filter(pk__in=changed).update(
                        gate_decision=decision, gate_reason="", send_after=now, send_claim="", send_claimed_until=None
                    )
                    released += len(changed)
                    to_enqueue.extend(pk for pk in changed if pk not in bulk_ids)
                elif decision == GateDecision.BLOCK:
                    still_deferred.update(
                        status=statuses.BLOCKED,
                        status_updated_at=now,
                        gate_decision=decision,
                        gate_reason=reason,
                        send_after=None,
                    )
                else:
                    still_deferred.update(gate_reason=reason, send_after=send_after)
    return released
