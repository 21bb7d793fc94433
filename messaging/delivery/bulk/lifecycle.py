"""Bulk sends: a CSV of recipients rendered through a template, checked, queued and paced out.

The life of a bulk send:

1. **Upload** (`bulk_csv_read`, `bulk_draft_create`, in `messaging.delivery.bulk.upload`): the
   CSV is validated row by row (phone numbers to E.164, every variable the template uses
   present, duplicates collapsed onto their first line) and stored, with the template body as it
   was at upload, on a `draft` BulkSend in the database. Keeping it there, not in a temp file or
   the cache, means the preview and the launch may run on different web servers, and launching
   is one transaction: either the messages exist and the stored rows are gone, or nothing
   happened.
2. **Preview** (`bulk_preview`, same module): rendered bodies, their encodings and segment
   counts, and what the compliance gate would do with each recipient right now
   (`gate_check_many`, batched).
3. **Launch** (`bulk_launch`) marks it `running`; **queueing** (`bulk_queue`) renders every row
   and creates the messages with `messages_queue_many` (one batched gate check, bulk inserts).
   Small sends queue inside the launch request; big ones in a Celery task.
4. **Dispatch** (`bulk_dispatch` in `messaging.delivery.bulk.dispatch`, run by
   `messaging.tasks.bulk`): one dispatcher per bulk send at a time (a Redis lock), taking pending
   messages in id order, each after a pacing slot for the tenant's sender
   (`messaging.delivery.pacing`), and handing it to `message_deliver`. Pausing or cancelling
   takes effect before the next message: the query that picks it requires the bulk send to be
   running.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.services import audit_record

from ... import statuses
from ...models import BulkSend, GateDecision, Message
from ..enqueue import BULK_DISPATCH_TASK, BULK_QUEUE_TASK, task_delay
from ..queueing import messages_queue_many
from .upload import bulk_rows_render

__all__ = [
    "bulk_cancel",
    "bulk_launch",
    "bulk_list",
    "bulk_pause",
    "bulk_progress",
    "bulk_progress_many",
    "bulk_queue",
    "bulk_resume",
    "bulks_to_queue",
]


INLINE_QUEUE_MAX = 2_000  # recipients queued inside the launch request; more go to a task

#: The counting groups of `messaging.statuses` (labels there, shared with the dashboard).
PROGRESS_BUCKETS = tuple(statuses.COUNT_LABELS)


# --- Launch and queueing ----------------------------------------------------------------------


def _locked(bulk: BulkSend) -> BulkSend:
    return BulkSend.objects.for_tenant(bulk.tenant).select_for_update().select_related("tenant").get(pk=bulk.pk)


def bulk_launch(*, bulk: BulkSend, audit: AuditContext) -> BulkSend:
    """Start a draft: it becomes `running` and its messages are queued (here, or in a task when
    there are many); audited. Raises ValidationError when it cannot be launched."""
    with transaction.atomic():
        bulk = _locked(bulk)
        if bulk.status != BulkSend.Status.DRAFT:
            raise ValidationError(f"This bulk send is {bulk.get_status_display().lower()}, not a draft.")
        if not bulk.tenant.can_send:
            raise ValidationError(
                f"{bulk.tenant.name} is {bulk.tenant.get_status_display().lower()}: nothing can be sent."
            )
        if not bulk.sender and not bulk.tenant.messaging_service_sid:
            raise ValidationError("Choose a sender number: this tenant has no Messaging Service.")
        recipients = len((bulk.upload or {}).get("recipients") or [])
        if not recipients:
            raise ValidationError("This draft has no recipients left.")
        bulk.status = BulkSend.Status.RUNNING
        bulk.launched_at = timezone.now()
        bulk.total_recipients = recipients
        bulk.save(update_fields=["status", "launched_at", "total_recipients"])
        audit_record(
            action="bulk.launch",
            tenant=bulk.tenant,
            audit=audit,
            target=bulk.name,
            details={"id": bulk.pk, "recipients": recipients, "purpose": bulk.purpose},
        )
        if recipients <= INLINE_QUEUE_MAX:
            try:
                bulk_queue(bulk_id=bulk.pk)
            except ValueError as exc:  # what Twilio would refuse anyway: nothing is launched
                raise ValidationError(str(exc)) from exc
        else:
            bulk_id = bulk.pk
            transaction.on_commit(lambda: task_delay(BULK_QUEUE_TASK, bulk_id))
    bulk.refresh_from_db()
    return bulk


@transaction.atomic
def bulk_queue(*, bulk_id: int, now: datetime | None = None) -> dict[str, int]:
    """Render and queue the stored rows of a launched bulk send, once (idempotent).

    The messages are created and the stored rows dropped in the same transaction, so a retried
    task finds nothing left to do. A bulk send cancelled before this ran queues nothing.
    """
    bulk = BulkSend.all_tenants.select_for_update().select_related("tenant").filter(pk=bulk_id).first()
    if bulk is None or bulk.status not in (BulkSend.Status.RUNNING, BulkSend.Status.PAUSED):
        return {}
    upload = bulk.upload or {}
    if not upload.get("recipients"):
        return {}
    _, phones, bodies = bulk_rows_render(upload)
    counts = messages_queue_many(
        tenant=bulk.tenant,
        rows=list(zip(phones, bodies, strict=True)),
        purpose=bulk.purpose,
        sender=bulk.sender,
        created_by=bulk.created_by,
        bulk_send=bulk,
        now=now,
    )
    # Only the counts stay: the rendered messages now hold what was sent to whom.
    bulk.upload = {k: v for k, v in upload.items() if k not in ("recipients", "errors", "body")} | {
        "queued": len(phones),
        "queued_counts": dict(counts or {}),
    }
    bulk.total_recipients = len(phones)
    bulk.save(update_fields=["upload", "total_recipients"])
    if bulk.status == BulkSend.Status.RUNNING:
        transaction.on_commit(lambda: task_delay(BULK_DISPATCH_TASK, bulk_id))
    return dict(counts or {})


# --- Pause, resume, cancel ----------------------------------------------------------------------


def _transition(*, bulk: BulkSend, allowed: tuple[str, ...], to: str, action: str, audit: AuditContext, details=None):
    bulk = _locked(bulk)
    if bulk.status not in allowed:
        raise ValidationError(f"This bulk send is {bulk.get_status_display().lower()}.")
    bulk.status = to
    fields = ["status"]
    if to in (BulkSend.Status.CANCELLED, BulkSend.Status.COMPLETED):
        bulk.finished_at = timezone.now()
        fields.append("finished_at")
    bulk.save(update_fields=fields)
    audit_record(
        action=action, tenant=bulk.tenant, audit=audit, target=bulk.name, details={"id": bulk.pk, **(details or {})}
    )
    return bulk


@transaction.atomic
def bulk_pause(*, bulk: BulkSend, audit: AuditContext) -> BulkSend:
    """Stop picking further messages; a message already handed to Twilio still goes. Audited."""
    return _transition(
        bulk=bulk, allowed=(BulkSend.Status.RUNNING,), to=BulkSend.Status.PAUSED, action="bulk.pause", audit=audit
    )


@transaction.atomic
def bulk_resume(*, bulk: BulkSend, audit: AuditContext) -> BulkSend:
    """Carry on where the pause stopped (the gate re-checks every message at send time). Audited."""
    bulk = _transition(
        bulk=bulk, allowed=(BulkSend.Status.PAUSED,), to=BulkSend.Status.RUNNING, action="bulk.resume", audit=audit
    )
    bulk_id = bulk.pk
    transaction.on_commit(lambda: task_delay(BULK_DISPATCH_TASK, bulk_id))
    return bulk


@transaction.atomic
def bulk_cancel(*, bulk: BulkSend, audit: AuditContext, now: datetime | None = None) -> int:
    """Cancel a draft, running or paused bulk send: every message not yet handed to Twilio
    becomes `canceled` (deferred ones too); returns how many. Audited."""
    now = now or timezone.now()
    bulk = _locked(bulk)
    allowed = (BulkSend.Status.DRAFT, BulkSend.Status.RUNNING, BulkSend.Status.PAUSED)
    if bulk.status not in allowed:
        raise ValidationError(f"This bulk send is already {bulk.get_status_display().lower()}.")
    # A message whose send lease is live is with a worker right now: it finishes on its own
    # (its outcome is recorded truthfully instead of a "canceled" Twilio never heard of).
    canceled = (
        Message.objects.for_tenant(bulk.tenant)
        .filter(bulk_send=bulk, status=statuses.PENDING)
        .filter(Q(send_claimed_until__isnull=True) | Q(send_claimed_until__lt=now))
        .update(status=statuses.CANCELED, status_updated_at=now, failure_reason="Bulk send cancelled")
    )
    unqueued = len((bulk.upload or {}).get("recipients") or [])
    if unqueued:
        upload = dict(bulk.upload)
        upload.pop("recipients", None)
        upload.pop("errors", None)
        bulk.upload = upload
        bulk.save(update_fields=["upload"])
    _transition(
        bulk=bulk,
        allowed=allowed,
        to=BulkSend.Status.CANCELLED,
        action="bulk.cancel",
        audit=audit,
        details={"canceled_messages": canceled, "never_queued": unqueued},
    )
    return canceled


# --- Progress -----------------------------------------------------------------------------------


def _bucket(status: str, gate_decision: str) -> str:
    group = statuses.count_group(status, deferred=gate_decision == GateDecision.DEFER)
    return group if group in statuses.COUNT_LABELS else statuses.IN_PROGRESS  # unknown: no outcome known


def bulk_progress_many(*, tenant: Tenant, bulk_ids: list[int]) -> dict[int, dict[str, int]]:
    """Counts per progress bucket for several bulk sends, in one grouped query."""
    result = {bulk_id: dict.fromkeys(PROGRESS_BUCKETS, 0) for bulk_id in bulk_ids}
    if not bulk_ids:
        return result
    rows = (
        Message.objects.for_tenant(tenant)
        .filter(bulk_send_id__in=bulk_ids)
        .values_list("bulk_send_id", "status", "gate_decision")
        .annotate(n=Count("id"))
        .order_by()
    )
    for bulk_id, status, gate_decision, n in rows:
        result[bulk_id][_bucket(status, gate_decision)] += n
    return result


def bulk_progress(*, tenant: Tenant, bulk: BulkSend) -> dict:
    """The progress page's numbers: counts per bucket (one grouped query) and the share done."""
    counts = bulk_progress_many(tenant=tenant, bulk_ids=[bulk.pk])[bulk.pk]
    queued = sum(counts.values())
    # Launched, not queued yet (a big send is queued by a task): no messages exist so far.
    # Read from the counts, not the stored rows, so that polling never loads the upload.
    launched = bulk.status in (BulkSend.Status.RUNNING, BulkSend.Status.PAUSED)
    waiting = max(bulk.total_recipients - queued, 0) if launched and not queued else 0
    total = max(bulk.total_recipients, queued)
    done = queued - counts["pending"] - counts["deferred"]  # handed to Twilio, blocked or cancelled
    return {
        "id": bulk.pk,
        "status": bulk.status,
        "status_label": bulk.get_status_display(),
        "total": total,
        "queued": queued,
        "awaiting_queue": waiting,
        "counts": counts,
        "done": done,
        "percent": round(100 * done / total, 1) if total else 0.0,
        "percents": {k: round(100 * v / total, 2) if total else 0.0 for k, v in counts.items()},
        "finished_at": bulk.finished_at.isoformat() if bulk.finished_at else None,
    }


def bulk_list(*, tenant: Tenant):
    """The tenant's bulk sends, newest first, without their (possibly large) stored uploads."""
    return (
        BulkSend.objects.for_tenant(tenant)
        .select_related("template", "created_by")
        .defer("upload")
        .order_by("-created_at", "-id")
    )


def bulks_to_queue() -> list[int]:
    """Launched bulk sends whose rows are still waiting to be queued (a lost task is retried)."""
    return list(
        BulkSend.all_tenants.filter(
            status__in=[BulkSend.Status.RUNNING, BulkSend.Status.PAUSED], upload__has_key="recipients"
        ).values_list("id", flat=True)
    )
