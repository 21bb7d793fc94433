"""Voice's part of the retention purge and of GDPR erasure (`tenants.retention` runs both;
`voice.registrations` registers these).

Retention: a recording older than the tenant's retention period is deleted at Twilio and here
(its row stays, with `deleted_at`, so the call still shows that a recording existed), except
recordings of a call under `legal_hold` (tenants skips whole tenants on hold). A recording is a
customer's voice, so it is deleted at Twilio whatever the tenant's `redact_at_twilio` (which
governs message-body redaction): after commit, by a task, when tenants does not do it inline.
A spoken message an outbound call read out is purged with it.

Erasure: the number is replaced by the erasure's marker in its calls (from/to), their spoken
messages, failure texts and status payloads (geographic fields dropped), and every recording of
those calls is deleted, here and at Twilio.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q, QuerySet

from messaging.delivery.enqueue import task_delay
from messaging.erasure import payload_geo_strip
from tenants.models import Tenant
from tenants.registry import NumberEraser, NumberErasure, RetentionPurger
from tenants.retention import text_columns_scrub, text_scrub

from .calls.recordings import recordings_remote_delete
from .models import Call, CallEvent, Recording

__all__ = ["CALLS_ERASER", "RECORDINGS_DELETE_TASK", "RECORDINGS_PURGER"]

#: Task name as queued messages know it: never rename.
RECORDINGS_DELETE_TASK = "voice.tasks.recordings_delete_task"
ERASER_KEY = "voice"
TWILIO_BATCH_SIZE = 100


def _purgeable(tenant: Tenant, cutoff: datetime) -> QuerySet[Recording]:
    return (
        Recording.objects.for_tenant(tenant)
        .filter(created_at__lt=cutoff, deleted_at__isnull=True)
        .exclude(call__legal_hold=True)
    )


def recordings_batch_ids(*, tenant: Tenant, cutoff: datetime, limit: int) -> list[int]:
    return list(_purgeable(tenant, cutoff).order_by("id").values_list("id", flat=True)[:limit])


def recordings_batch_purge(
    *, tenant: Tenant, cutoff: datetime, ids: list[int], now: datetime, remote: bool
) -> tuple[int, list[str]]:
    """Mark the batch deleted (rechecking the rules) and clear what the calls said; the SIDs go
    to Twilio inline when `remote`, else through the task after commit."""
    batch = _purgeable(tenant, cutoff).filter(id__in=ids)
    sids = list(batch.values_list("sid", flat=True))
    call_ids = set(batch.exclude(call=None).values_list("call_id", flat=True))
    purged = batch.update(deleted_at=now, media_url="")
    Call.objects.for_tenant(tenant).filter(pk__in=call_ids).update(spoken_message="")
    if remote:
        return purged, sids
    recordings_delete_enqueue_on_commit(tenant=tenant, sids=sids)
    return purged, []


def recordings_delete_enqueue_on_commit(*, tenant: Tenant, sids: list[str]) -> None:
    """Delete `sids` at Twilio after commit, in batches, by the task (a lost publish is logged:
    the recording is gone here, and an operator can delete it in Twilio's console)."""
    for start in range(0, len(sids), TWILIO_BATCH_SIZE):
        chunk = sids[start : start + TWILIO_BATCH_SIZE]
        transaction.on_commit(lambda chunk=chunk: task_delay(RECORDINGS_DELETE_TASK, tenant.pk, chunk), robust=True)


RECORDINGS_PURGER = RetentionPurger(
    key="voice.recordings",
    batch_ids=recordings_batch_ids,
    batch_purge=recordings_batch_purge,
    remote_redact=recordings_remote_delete,
    remote_batch_size=TWILIO_BATCH_SIZE,
)


def number_erase_voice(erasure: NumberErasure) -> None:
    """The number's calls and their recordings (module docstring); inside tenants' transaction."""
    tenant, phone, marker, pattern = erasure.tenant, erasure.phone, erasure.marker, erasure.pattern
    is_from, is_to = Q(from_number=phone), Q(to_number=phone)
    call_ids = list(Call.objects.for_tenant(tenant).filter(is_from | is_to).values_list("id", flat=True))
    calls = Call.objects.for_tenant(tenant).filter(id__in=call_ids)
    erasure.counts["calls"] = len(call_ids)
    calls.filter(is_from).update(from_number=marker)
    calls.filter(is_to).update(to_number=marker)
    text_columns_scrub(calls, ["spoken_message", "failure_reason"], pattern, marker, erasure.hint)
    events = CallEvent.objects.for_tenant(tenant).filter(call_id__in=call_ids)
    for row in events.values("pk", "payload"):
        new = text_scrub(payload_geo_strip(row["payload"]), pattern, marker)
        if new != row["payload"]:
            events.filter(pk=row["pk"]).update(payload=new)
    recordings = Recording.objects.for_tenant(tenant).filter(call_id__in=call_ids, deleted_at__isnull=True)
    sids = list(recordings.values_list("sid", flat=True))
    erasure.counts["recordings"] = recordings.update(deleted_at=erasure.now, media_url="")
    recordings_delete_enqueue_on_commit(tenant=tenant, sids=sids)


def erasure_describe(counts) -> str:
    return f"{counts.get('calls', 0)} call(s) and {counts.get('recordings', 0)} recording(s), deleted at Twilio too"


CALLS_ERASER = NumberEraser(key=ERASER_KEY, erase=number_erase_voice, describe=erasure_describe, order=150)
