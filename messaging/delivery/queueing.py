"""Queueing outbound SMS inside the request: each row stored with the compliance gate's decision,
in batched inserts, and enqueued for delivery once the transaction commits (see
`messaging.delivery.attempts` for how a queued message is then delivered exactly once)."""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from tenants.models import Tenant

from .. import statuses
from ..compliance.gate import GateVerdict, gate_evaluate
from ..models import GateDecision, Message
from .enqueue import UNQUEUED_REASON, deliveries_enqueue_on_commit

logger = logging.getLogger("commsportal.messaging")

__all__ = [
    "MAX_BODY_LENGTH",
    "message_send",
    "messages_queue_many",
]


#: Twilio's limit for one message body (error 21617 beyond it).
MAX_BODY_LENGTH = 1600
#: Rows per INSERT when queueing many messages.
BULK_BATCH_SIZE = 1000


# --- Queueing -----------------------------------------------------------------------------------


def message_send(
    *,
    tenant: Tenant,
    to: str,
    body: str,
    purpose: str,
    sender: str = "",
    created_by=None,
    bulk_send=None,
    now: datetime | None = None,
) -> Message:
    """Store one outbound message with the gate's decision and, when it may go now, enqueue its
    delivery once the surrounding transaction commits.

    Returns the row: status ``blocked`` (gate_decision block, gate_reason), or ``pending`` with
    gate_decision ``defer`` (send_after) or ``send``. Never calls Twilio. `sender` is the From
    number; it may be empty when the tenant has a Messaging Service. Raises ValueError for an
    unknown purpose, an empty or over-long body, or no sender at all.
    """
    now = now or timezone.now()
    _check_sender(tenant, sender)
    _check_body(body)
    [(phone, verdict)] = gate_evaluate(tenant=tenant, recipients=[to], purpose=purpose, now=now)
    with transaction.atomic():
        message = Message.objects.create(
            **_row_fields(
                tenant=tenant,
                to=to,
                phone=phone,
                verdict=verdict,
                body=body,
                purpose=purpose,
                sender=sender,
                created_by=created_by,
                bulk_send=bulk_send,
                now=now,
            )
        )
        unqueued = deliveries_enqueue_on_commit([message.pk]) if verdict.sends and bulk_send is None else []
    if message.pk in unqueued:
        # The publish ran on commit and the broker was down: the row is marked, and so is this
        # copy, which the send form reads to tell the user it waits for the worker.
        message.failure_reason = UNQUEUED_REASON
    logger.info(
        "message.queued",
        extra={"tenant": tenant.slug, "message_id": message.pk, "decision": verdict.decision, "reason": verdict.reason},
    )
    return message


def messages_queue_many(
    *,
    tenant: Tenant,
    rows: Sequence[tuple[str, str]],
    purpose: str,
    sender: str = "",
    created_by=None,
    bulk_send=None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Gate and store many messages at once: `rows` are (to, body) pairs, in order.

    A constant number of gate queries plus one INSERT per `BULK_BATCH_SIZE` rows, in one
    transaction. Returns counts: ``total``, one per decision (``send``, ``defer``, ``block``)
    and one per reason (``opted_out``, ``quiet_hours``, ...). A number listed twice counts
    against its own frequency cap.

    Without `bulk_send`, messages the gate lets through are enqueued on commit like
    `message_send`'s. With `bulk_send`, nothing is enqueued: the rows wait as status
    ``pending``, gate_decision ``send``, send_after = now, for the bulk dispatcher, which
    picks them in id order (`Message.objects.for_tenant(t).filter(bulk_send=b,
    status="pending", gate_decision="send", sid=None, send_after__lte=now)`) at its pace and
    for each either calls `message_deliver(message_id=...)` (catching `DeliveryRetry`: the
    row stays pending, try it again later) or enqueues `message_deliver_task.delay(id)`.
    `message_deliver` re-checks the gate, holds the lease and never sends twice, so picking
    a row twice is harmless. Deferred bulk rows come back to the dispatcher the same way:
    the periodic release turns them into pending/send rows again without enqueueing them,
    so a bulk send is only finished when it has no pending rows left.
    """
    now = now or timezone.now()
    _check_sender(tenant, sender)
    for _, body in rows:
        _check_body(body)
    verdicts = gate_evaluate(tenant=tenant, recipients=[to for to, _ in rows], purpose=purpose, now=now)
    counts: Counter[str] = Counter(total=len(rows))
    varying = []
    for (to, body), (phone, verdict) in zip(rows, verdicts, strict=True):
        counts[verdict.decision] += 1
        if verdict.reason:
            counts[verdict.reason] += 1
        fields = _row_fields(
            tenant=tenant,
            to=to,
            phone=phone,
            verdict=verdict,
            body=body,
            purpose=purpose,
            sender=sender,
            created_by=created_by,
            bulk_send=bulk_send,
            now=now,
        )
        varying.append(tuple(fields[name] for name in _VARYING_FIELDS))
    template = Message(
        **_row_fields(
            tenant=tenant,
            to="",
            phone="",
            verdict=GateVerdict(GateDecision.SEND),
            body="",
            purpose=purpose,
            sender=sender,
            created_by=created_by,
            bulk_send=bulk_send,
            now=now,
        )
    )
    with transaction.atomic():
        ids = _messages_insert(template=template, varying=varying)
        if bulk_send is None and counts[GateDecision.SEND]:
            decision_at = _VARYING_FIELDS.index("gate_decision")
            deliveries_enqueue_on_commit(
                [pk for pk, values in zip(ids, varying, strict=True) if values[decision_at] == GateDecision.SEND]
            )
    logger.info("message.queued_many", extra={"tenant": tenant.slug, "counts": dict(counts)})
    return dict(counts)


def _check_sender(tenant: Tenant, sender: str) -> None:
    if not sender and not tenant.messaging_service_sid:
        raise ValueError("No sender: give a From number or set the tenant's Messaging Service.")


def _check_body(body: str) -> None:
    if not body or not body.strip():
        raise ValueError("The message body is empty.")
    if len(body) > MAX_BODY_LENGTH:
        raise ValueError(f"The message body is longer than Twilio's {MAX_BODY_LENGTH}-character limit.")


def _row_fields(*, tenant, to, phone, verdict, body, purpose, sender, created_by, bulk_send, now) -> dict:
    blocked = verdict.decision == GateDecision.BLOCK
    return {
        "tenant": tenant,
        "direction": Message.Direction.OUTBOUND,
        "to_number": phone or (to or "").strip()[:32],
        "from_number": sender,
        "messaging_service_sid": tenant.messaging_service_sid,
        "body": body,
        "purpose": purpose,
        "status": statuses.BLOCKED if blocked else statuses.PENDING,
        "status_updated_at": now,
        "gate_decision": verdict.decision,
        "gate_reason": verdict.reason,
        "send_after": None if blocked else (verdict.send_after or now),
        "created_by": created_by,
        "bulk_send": bulk_send,
    }


#: The fields that differ between the rows of one `messages_queue_many` call.
_VARYING_FIELDS = ("to_number", "body", "status", "gate_decision", "gate_reason", "send_after")


def _messages_insert(*, template: Message, varying: list[tuple]) -> list[int]:
    """Insert one message per `varying` tuple (values of `_VARYING_FIELDS`; every other column
    as on `template`) and return their ids, in order.

    Why not `bulk_create`: it prepares every field of every row through the ORM (about 30
    fields, ~0.5 ms a row) and on SQLite caps a statement at 999 parameters (33 rows), so
    100,000 rows took over a minute. Here the constant columns are prepared once, by the same
    field methods `bulk_create` uses, and rows go in multi-row INSERT ... RETURNING statements
    (PostgreSQL, and SQLite >= 3.35; both return the ids in VALUES order, as `bulk_create`
    itself relies on).
    """
    if not varying:
        return []
    if connection.vendor == "postgresql":
        return _messages_insert_postgresql(template=template, varying=varying)
    if not connection.features.can_return_rows_from_bulk_insert:  # pragma: no cover - old SQLite
        objects = [
            Message(**{**_model_fields(template), **dict(zip(_VARYING_FIELDS, v, strict=True))}) for v in varying
        ]
        return [m.pk for m in Message.objects.bulk_create(objects, batch_size=BULK_BATCH_SIZE)]
    fields = [f for f in Message._meta.concrete_fields if not f.primary_key]
    base = [f.get_db_prep_save(f.pre_save(template, add=True), connection) for f in fields]
    position = {f.attname: i for i, f in enumerate(fields)}
    slots = [(position[name], Message._meta.get_field(name)) for name in _VARYING_FIELDS]
    prepared: dict[tuple[str, object], object] = {}
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_statement = max(1, min(BULK_BATCH_SIZE, _max_query_params() // len(fields)))
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(varying), per_statement):
            chunk = varying[start : start + per_statement]
            params: list = []
            for values in chunk:
                row = base.copy()
                for (index, field), value in zip(slots, values, strict=True):
                    if value is None or isinstance(value, str):
                        row[index] = value
                    else:  # datetimes: adapt once per distinct value
                        key = (field.attname, value)
                        if key not in prepared:
                            prepared[key] = field.get_db_prep_save(value, connection)
                        row[index] = prepared[key]
                params.extend(row)
            cursor.execute(
                f"INSERT INTO {quote(Message._meta.db_table)} ({columns}) "
                f"VALUES {', '.join([placeholders] * len(chunk))} RETURNING {quote(Message._meta.pk.column)}",
                params,
            )
            ids.extend(row[0] for row in cursor.fetchall())
    return ids


def _messages_insert_postgresql(*, template: Message, varying: list[tuple]) -> list[int]:
    """PostgreSQL: reserve the ids from the table's sequence (ascending, in row order), then
    INSERT ... SELECT FROM unnest(one array per varying column): a handful of parameters per
    statement however many rows, which psycopg adapts in C (thousands of scalar placeholders
    would be parsed one by one)."""
    meta = Message._meta
    quote = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    slots = {name: meta.get_field(name) for name in _VARYING_FIELDS}
    ids: list[int] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(varying)],
        )
        ids = sorted(row[0] for row in cursor.fetchall())
        select, constants = [], []
        for field in fields:
            if field.attname in slots:
                select.append(f"v.{quote(field.column)}")
            else:
                select.append(f"%s::{field.cast_db_type(connection)}")
                constants.append(field.get_db_prep_save(field.pre_save(template, add=True), connection))
        arrays = ", ".join(
            [f"%s::{meta.pk.cast_db_type(connection)}[]"]
            + [f"%s::{slots[name].cast_db_type(connection)}[]" for name in _VARYING_FIELDS]
        )
        aliases = ", ".join(quote(c) for c in [meta.pk.column] + [slots[n].column for n in _VARYING_FIELDS])
        targets = ", ".join(quote(c) for c in [meta.pk.column] + [f.column for f in fields])
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({targets}) "
            f"SELECT v.{quote(meta.pk.column)}, {', '.join(select)} FROM unnest({arrays}) AS v({aliases})"
        )
        per_statement = 5000
        for start in range(0, len(varying), per_statement):
            chunk = varying[start : start + per_statement]
            columns = [list(column) for column in zip(*chunk, strict=True)]
            cursor.execute(sql, [*constants, ids[start : start + per_statement], *columns])
    return ids


def _model_fields(instance: Message) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in Message._meta.concrete_fields if not f.primary_key}


def _max_query_params() -> int:
    if connection.vendor == "sqlite":
        try:
            return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except AttributeError:  # Python < 3.11 or no open connection
            return connection.features.max_query_params
    return connection.features.max_query_params or 65535
