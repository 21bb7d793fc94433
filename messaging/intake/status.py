"""Twilio's delivery status callbacks: applied in any order, duplicated or concurrent, keyed on
(MessageSid, MessageStatus); a 21610 answer also records an opt-out. See
`messaging.intake.inbound` for why every write here is keyed on what Twilio guarantees unique."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tenants import twilio_codes
from tenants.models import Tenant
from tenants.phones import phone_mask

from .. import statuses
from ..delivery.enqueue import segments_fetch_enqueue_on_commit
from ..delivery.segment_counts import SEGMENTS_SETTLED_STATUSES, segments_fetch_needed
from ..ledgers.reachability import number_is_opted_out
from ..ledgers.services import opt_out_record
from ..models import Message, MessageEvent, OptOutEvent
from .params import param_int, param_phone, param_small_int, param_text, params_dict, params_storable

logger = logging.getLogger("commsportal.messaging")

__all__ = [
    "CALLBACK_STATUSES",
    "sid_held_elsewhere",
    "status_callback_apply",
]


ERROR_21610_REASON = "Twilio answered 21610: recipient had opted out at Twilio"

#: Statuses Twilio may report in a status callback. `pending` and `blocked` are the portal's
#: own and never come from Twilio.
CALLBACK_STATUSES: frozenset[str] = (statuses.OUTBOUND_STATUSES | statuses.INBOUND_STATUSES) - {
    statuses.PENDING,
    statuses.BLOCKED,
}


# --- Status callbacks ---------------------------------------------------------------------------


def status_callback_apply(*, tenant: Tenant, params: Mapping, message_id: str | int | None = None) -> int | None:
    """Apply one status callback: a timeline event per distinct status, a status that only
    moves forward, the error code, and an opt-out when Twilio says 21610. Returns the
    message's id, or None, changing nothing, when the SID belongs to another tenant (module
    docstring).

    Idempotent per (MessageSid, MessageStatus): a repeat changes nothing, and
    `status_should_advance` makes the order of callbacks irrelevant. The common case (a
    message this tenant already holds by its SID, no 21610) is one statement on PostgreSQL
    (`_status_apply_fast`); everything else takes `_status_apply_locked`.

    Raises ValueError for a status Twilio does not send (the view answers 400 before that).
    """
    params, flags = params_storable(params)
    new_status = param_text(params, "MessageStatus").lower()
    if new_status not in CALLBACK_STATUSES:
        raise ValueError(f"Unknown MessageStatus {new_status!r}")
    error_code = param_int(params.get("ErrorCode"))
    if error_code != twilio_codes.OPTED_OUT and connection.vendor == "postgresql":
        applied = _status_apply_fast(
            tenant=tenant, params=params, flags=flags, status=new_status, error_code=error_code
        )
        if applied is not None:
            return applied
    message = _status_apply_locked(
        tenant=tenant, params=params, flags=flags, status=new_status, error_code=error_code, message_id=message_id
    )
    return message.pk if message is not None else None


#: The one statement of the common case. The UPDATE runs first (the INSERT reads its count), so
#: it takes the row lock before the event's unique slot, in the same order as the locked path
#: (row, then event): the two paths never deadlock. Under READ COMMITTED a concurrent callback's
#: UPDATE waits for this one and re-checks its WHERE on the committed row, so the forward-only
#: rule holds across concurrent callbacks without SELECT FOR UPDATE.
_FAST_SQL = """
WITH target AS (
    SELECT id FROM {message} WHERE sid = %(sid)s AND tenant_id = %(tenant)s
), advanced AS (
    UPDATE {message} AS m
    SET status = %(status)s, status_updated_at = %(now)s, error_code = COALESCE(%(error_code)s, m.error_code)
    FROM target
    WHERE m.id = target.id AND NOT (m.status = ANY(%(refused)s))
    RETURNING m.direction = 'outbound' AND m.num_segments IS NULL AS wants_segments
), moved AS (
    SELECT count(*) AS n, coalesce(bool_or(wants_segments), false) AS wants_segments FROM advanced
), event AS (
    INSERT INTO {event} (tenant_id, message_id, status, error_code, occurred_at, payload)
    SELECT %(tenant)s, target.id, %(status)s, %(error_code)s, %(now)s, %(payload)s::jsonb FROM target, moved
    ON CONFLICT (message_id, status) DO NOTHING
    RETURNING id
)
SELECT target.id, moved.n, moved.wants_segments, (SELECT count(*) FROM event) FROM target, moved
"""


def _refused_from(new: str) -> list[str]:
    """Every stored status `new` may NOT replace: the WHERE clause's exact copy of
    `status_should_advance` (an empty or unknown stored value is not listed: it yields)."""
    known = [value for value, _ in statuses.STATUS_CHOICES]
    return [current for current in known if not statuses.status_should_advance(current, new)]


#: new status -> stored statuses it may not replace, for every status a callback may carry.
REFUSED_FROM: dict[str, list[str]] = {new: _refused_from(new) for new in sorted(CALLBACK_STATUSES)}


def _status_apply_fast(
    *, tenant: Tenant, params: Mapping, flags: dict, status: str, error_code: int | None
) -> int | None:
    """The common case in one round trip, in autocommit (one statement is its own transaction,
    committed before the view answers): None when this tenant holds no message with the SID
    (the caller takes the locked path, which creates or re-attaches it)."""
    sql = _FAST_SQL.format(
        message=connection.ops.quote_name(Message._meta.db_table),
        event=connection.ops.quote_name(MessageEvent._meta.db_table),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "sid": param_text(params, "MessageSid"),
                "tenant": tenant.pk,
                "status": status,
                "now": timezone.now(),
                "error_code": error_code,
                "refused": REFUSED_FROM[status],
                "payload": json.dumps({**params_dict(params), **flags}),
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    message_id, _moved, wants_segments, _recorded = row
    if wants_segments and status in SEGMENTS_SETTLED_STATUSES:
        segments_fetch_enqueue_on_commit(message_id)
    return message_id


def _status_apply_locked(
    *, tenant: Tenant, params: Mapping, flags: dict, status: str, error_code: int | None, message_id
) -> Message | None:
    """The general path: the message row locked (`select_for_update`) so concurrent callbacks
    apply one at a time. `message_id` is the portal's own id from the StatusCallback URL
    (`?m=`): an outbound message of this tenant still waiting for its SID gets it here, even if
    the callback beats the send's own bookkeeping. A callback for a message the portal never
    sent creates its log row."""
    sid = param_text(params, "MessageSid")
    new_status = status
    now = timezone.now()
    with transaction.atomic():
        found = _callback_message(
            tenant=tenant, sid=sid, status=new_status, error_code=error_code, params=params, message_id=message_id
        )
        if found is None:
            return None
        message, created = found
        events = MessageEvent.objects.for_tenant(tenant).filter(message=message, status=new_status)
        if not created and events.exists():
            return message  # this (MessageSid, MessageStatus) was applied before
        try:
            with transaction.atomic():
                MessageEvent.objects.create(
                    tenant=tenant,
                    message=message,
                    status=new_status,
                    error_code=error_code,
                    occurred_at=now,
                    payload={**params_dict(params), **flags},
                )
        except IntegrityError:
            return message  # the row lock makes this unreachable on PostgreSQL; kept as a backstop
        if not created and statuses.status_should_advance(message.status, new_status):
            message.status = new_status
            message.status_updated_at = now
            update = ["status", "status_updated_at"]
            if error_code is not None:
                message.error_code = error_code
                update.append("error_code")
            message.save(update_fields=update)
            if segments_fetch_needed(message):
                segments_fetch_enqueue_on_commit(message.pk)
        if error_code == twilio_codes.OPTED_OUT:
            _opt_out_from_21610(tenant=tenant, message=message, params=params)
    return message


def _callback_message(
    *, tenant: Tenant, sid: str, status: str, error_code: int | None, params: Mapping, message_id
) -> tuple[Message, bool] | None:
    """The locked message a callback is about, as (message, created), or None if foreign.

    FOR NO KEY UPDATE, the lock an UPDATE of the row takes: it serialises this path with the
    fast path's UPDATE, but not with the foreign-key check of an event being inserted for the
    message. With FOR UPDATE, a fast-path callback whose status does not advance (its UPDATE
    matches nothing, so it holds no row lock) could claim the event's unique slot, then wait
    here on its FK check while this path waited on that slot: a deadlock CI caught."""
    locked = Message.objects.for_tenant(tenant).select_for_update(no_key=True)
    message = locked.filter(sid=sid).first()
    if message is not None:
        return message, False
    pk = param_int(message_id)
    if pk is not None:
        # Only a row still waiting for its SID: never re-point a message that already has one.
        message = locked.filter(pk=pk, direction=Message.Direction.OUTBOUND, sid__isnull=True).first()
        if message is not None:
            message.sid = sid
            update = ["sid"]
            if message.accepted_at is None:  # a callback proves Twilio accepted it
                message.accepted_at = timezone.now()
                update.append("accepted_at")
            if not message.messaging_service_sid and param_text(params, "MessagingServiceSid"):
                message.messaging_service_sid = param_text(params, "MessagingServiceSid")[:34]
                update.append("messaging_service_sid")
            if not message.from_number and param_text(params, "From"):
                message.from_number = param_phone(param_text(params, "From"), tenant=tenant)
                update.append("from_number")
            try:
                with transaction.atomic():
                    message.save(update_fields=update)
                return message, False
            except IntegrityError:
                pass  # a concurrent callback already stored this SID on a new row: use that
    direction = Message.Direction.INBOUND if status in statuses.INBOUND_STATUSES else Message.Direction.OUTBOUND
    try:
        with transaction.atomic():
            message = Message.objects.create(
                tenant=tenant,
                direction=direction,
                sid=sid,
                messaging_service_sid=param_text(params, "MessagingServiceSid")[:34],
                from_number=param_phone(param_text(params, "From"), tenant=tenant),
                to_number=param_phone(param_text(params, "To"), tenant=tenant),
                num_segments=param_small_int(params.get("NumSegments")),
                status=status,
                error_code=error_code,
                status_updated_at=timezone.now(),
            )
        logger.info("twilio.status.unknown_message", extra={"tenant": tenant.slug, "sid": sid})
        return message, True
    except IntegrityError:
        message = locked.filter(sid=sid).first()
        if message is not None:
            return message, False  # a concurrent callback created it first
        if sid_held_elsewhere(tenant=tenant, sid=sid):
            return None
        raise


def _opt_out_from_21610(*, tenant: Tenant, message: Message, params: Mapping) -> None:
    """Twilio refused the send because the person opted out at Twilio: our list had drifted.

    Recorded once: not when the number is already opted out here, and never twice for the
    same message (a failed and an undelivered callback may both carry 21610).
    """
    phone = param_phone(param_text(params, "To"), tenant=tenant) or message.to_number
    if not phone or number_is_opted_out(tenant=tenant, phone=phone):
        return
    if OptOutEvent.objects.for_tenant(tenant).filter(message=message, action=OptOutEvent.Action.OPT_OUT).exists():
        return
    opt_out_record(
        tenant=tenant,
        phone=phone,
        source=OptOutEvent.Source.ERROR_21610,
        sender=param_text(params, "From") or param_text(params, "MessagingServiceSid") or message.from_number,
        reason=ERROR_21610_REASON,
        message=message,
    )
    logger.info("messaging.opt_out.error_21610", extra={"tenant": tenant.slug, "phone": phone_mask(phone)})


# --- Helpers --------------------------------------------------------------------------------------


def sid_held_elsewhere(*, tenant: Tenant, sid: str) -> bool:
    """Whether another tenant holds `sid`: a deliberate cross-tenant check, logged when true."""
    held = Message.all_tenants.filter(sid=sid).exclude(tenant=tenant).exists()
    if held:
        logger.warning(
            "twilio.webhook.foreign_message_sid",
            extra={"event": "twilio.webhook.foreign_message_sid", "tenant": tenant.slug, "sid": sid},
        )
    return held
