"""Twilio's call status callbacks: applied in any order, duplicated or concurrent, keyed on
(CallSid, CallStatus), the stored status only moving forward (`voice.calls.statuses`).

The same path serves the resync (`voice.calls.resync`), which hands it a fetched Call resource
in a callback's shape, so a lost callback and a late one end in the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging.delivery.enqueue import task_delay
from messaging.intake.params import param_phone, params_dict
from tenants.models import Tenant

from ..models import Call, CallEvent
from . import statuses
from .params import param_int, param_text, param_time, voice_params_storable
from .records import call_get_or_create

logger = logging.getLogger("commsportal.voice")

__all__ = ["CALL_PRICE_FETCH_TASK", "call_price_store", "call_status_apply"]

#: Task name as queued messages know it: never rename.
CALL_PRICE_FETCH_TASK = "voice.tasks.call_price_fetch_task"
#: `Call.sequence_number` and `Call.duration` are integer columns: larger values are not Twilio's.
_INT_MAX = 2_147_483_647


def _small(value) -> int | None:
    number = param_int(value)
    return number if number is not None and number <= _INT_MAX else None


def call_status_apply(*, tenant: Tenant, params: Mapping, call_id: str | int | None = None) -> Call | None:
    """Apply one call status callback: a timeline event per distinct status, a status that only
    moves forward, duration, answer and end times, answered-by (machine detection).

    Idempotent per (CallSid, CallStatus): a repeat changes nothing. The call row is locked so
    concurrent callbacks for one call apply one at a time. `call_id` is the portal's own id from
    the StatusCallback URL (`?call=`): an outbound call still waiting for its SID gets it here.
    A callback for a call the portal never saw creates its row. When the call turns final, its
    price is fetched by a task (Twilio sets it only after the call ends).

    Returns None, changing nothing, when the CallSid belongs to another tenant. Raises
    ValueError for a status Twilio does not send (the view answers 400 before that).
    """
    params, flags = voice_params_storable(params)
    new_status = param_text(params, "CallStatus").lower()
    if new_status not in statuses.CALLBACK_STATUSES:
        raise ValueError(f"Unknown CallStatus {new_status!r}")
    sequence = _small(params.get("SequenceNumber"))
    now = timezone.now()
    at = param_time(params, "Timestamp") or now
    with transaction.atomic():
        found = _callback_call(tenant=tenant, params=params, status=new_status, call_id=call_id)
        if found is None:
            return None
        call, created = found
        if not created and CallEvent.objects.for_tenant(tenant).filter(call=call, status=new_status).exists():
            return call  # this (CallSid, CallStatus) was applied before
        try:
            with transaction.atomic():
                CallEvent.objects.create(
                    tenant=tenant,
                    call=call,
                    status=new_status,
                    sequence_number=sequence,
                    answered_by=param_text(params, "AnsweredBy"),
                    occurred_at=at,
                    payload={**params_dict(params), **flags},
                )
        except IntegrityError:
            return call  # the row lock makes this unreachable on PostgreSQL; kept as a backstop
        was_final = statuses.call_status_is_final(call.status) and not created
        _call_update(call, params=params, status=new_status, sequence=sequence, at=at, now=now, created=created)
        if new_status in statuses.FINAL_STATUSES and call.status == new_status and not was_final:
            transaction.on_commit(lambda: task_delay(CALL_PRICE_FETCH_TASK, call.pk), robust=True)
    return call


def _call_update(call: Call, *, params: Mapping, status: str, sequence, at, now, created: bool) -> None:
    """Fold one callback into the call row (only the fields it changes are written)."""
    update: list[str] = []
    advance = created or statuses.call_status_should_advance(
        call.status, status, current_sequence=call.sequence_number, new_sequence=sequence
    )
    if advance:
        call.status, call.status_updated_at = status, now
        update += ["status", "status_updated_at"]
        if sequence is not None:
            call.sequence_number = sequence
            update.append("sequence_number")
        if status in statuses.FINAL_STATUSES:
            call.ended_at = at
            update.append("ended_at")
    # A late in-progress still says when the call was answered; the final callback that won
    # says how long it lasted, whichever order they came in.
    if status == statuses.IN_PROGRESS and call.started_at is None:
        call.started_at = at
        update.append("started_at")
    duration = _small(params.get("CallDuration"))
    if status == call.status and status in statuses.FINAL_STATUSES and duration is not None:
        if call.duration != duration:
            call.duration = duration
            update.append("duration")
    answered_by = param_text(params, "AnsweredBy")
    if answered_by and not call.answered_by:
        call.answered_by = answered_by
        update.append("answered_by")
    if update:
        call.save(update_fields=update)


def _callback_call(*, tenant: Tenant, params: Mapping, status: str, call_id) -> tuple[Call, bool] | None:
    """The locked call a callback is about, as (call, created), or None if it is another tenant's."""
    sid = param_text(params, "CallSid")
    locked = Call.objects.for_tenant(tenant).select_for_update()
    call = locked.filter(sid=sid).first()
    if call is not None:
        return call, False
    pk = param_int(call_id)
    if pk is not None:
        # Only a portal call still waiting for its SID: never re-point one that has a SID.
        call = locked.filter(pk=pk, direction=Call.Direction.OUTBOUND, sid__isnull=True).first()
        if call is not None:
            call.sid = sid
            try:
                with transaction.atomic():
                    call.save(update_fields=["sid"])
                return call, False
            except IntegrityError:
                pass  # a concurrent callback already created this SID's row: use that one
    try:
        call, created = call_get_or_create(
            tenant=tenant,
            sid=sid,
            direction=param_text(params, "Direction"),
            from_number=param_phone(param_text(params, "From"), tenant=tenant),
            to_number=param_phone(param_text(params, "To"), tenant=tenant),
            status=status,
        )
    except Call.DoesNotExist:
        logger.warning("twilio.webhook.foreign_call_sid", extra={"tenant": tenant.slug, "sid": sid})
        return None
    return locked.get(pk=call.pk), created


def call_price_store(*, call: Call, price, price_unit: str) -> bool:
    """Store the price Twilio billed for `call` (negative, as Twilio reports charges).
    Returns False while Twilio has not priced it yet."""
    if price in (None, ""):
        return False
    try:
        amount = Decimal(str(price))
    except InvalidOperation:
        return False
    Call.objects.for_tenant(call.tenant).filter(pk=call.pk).update(price=amount, price_unit=(price_unit or "")[:3])
    return True
