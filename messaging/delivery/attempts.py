"""Sending outbound SMS: queue through the compliance gate (`messaging.delivery.queueing`), then
deliver each message once (here).

Queueing (`message_send`, `messages_queue_many`) runs inside the user's request. It stores the
log row with the gate's decision and never talks to Twilio:

* ``block``: status ``blocked``, `gate_reason` says why; final, never reaches Twilio.
* ``defer``: status ``pending``, `send_after` = when the gate allows it. Nothing is enqueued:
  `deferred_messages_release` (periodic, every minute) re-checks due rows. Long delays live in
  the database, never in Celery countdowns (Redis redelivers ETA tasks after its visibility
  timeout, which would send twice).
* ``send``: status ``pending``, `send_after` = now. Enqueued with `transaction.on_commit`
  (`messaging.tasks.message_deliver_task`), except rows of a bulk send, which the bulk
  dispatcher paces itself.

Delivery (`message_deliver`, run by the worker) must survive retries, duplicated tasks and a
worker killed at any instant, and still never send a message twice. How:

1. Lease. The row is locked (`select_for_update`) and claimed with a compare-and-swap update:
   `send_claim` = this run's token, `send_claimed_until` = now + lease. The claim is COMMITTED
   before Twilio is called, so a second worker (a duplicated or redelivered task) sees it and
   backs off (outcome ``leased``) until it expires. The lease outlives the task's hard time
   limit, so a live worker never loses it mid-call.
2. Idempotence. A row that has a SID or is no longer ``pending`` is done; running again does
   nothing.
3. Gate again at send time: an opt-out, consent revocation or review that arrived while the
   message waited stops it (``blocked``) or defers it again.
4. Reconcile before any resend. `send_attempts` is incremented (and committed) before each
   Twilio call. A row with attempts but no SID may have reached Twilio: the worker died after
   Twilio accepted it, or the connection dropped before the answer. Before sending again, the
   worker lists the messages Twilio holds for that recipient since the row became due
   (`messages.list(to=, date_sent_after=)`, then the newest page unfiltered, since a message
   still queued at Twilio has no DateSent yet) and matches one with the same body and sender
   whose SID no other row of ours holds. Found: its SID is attached and nothing is sent
   (outcome ``reconciled``). Twilio's Message resource does not show the StatusCallback URL,
   so the ``?m=<id>`` it carries cannot be matched here; instead, Twilio's status callbacks
   for that message carry it, and `messaging.intake.status.status_callback_apply` attaches the SID
   to this row as soon as the first callback arrives, which makes step 2 stop any resend.
5. Save the SID at once after Twilio answers, without moving a status a callback may already
   have advanced (`statuses.status_should_advance`).

Errors: a retryable `TwilioError` (429/20429, 5xx, connection failures, timeouts) releases the
lease and raises `DeliveryRetry`; the task retries with backoff (`messaging.tasks.delivery`). Any other
error is terminal: status ``failed``, `error_code`, `failure_reason` = the explanation support
staff read; never retried. 21610 (recipient opted out at Twilio) also records an opt-out.

"Definitely not sent" and "maybe sent" are told apart (`TwilioError.maybe_sent`): a refused
connection or a DNS failure never reached Twilio, so that attempt is uncounted again
(`send_attempts` counts only attempts that may have reached Twilio or that Twilio answered) and,
with no counted attempt left, the next one needs no lookup. (An attempt Twilio answered with a
4xx/429 stays counted, so the budget still ends a Twilio that keeps refusing; the lookup it
causes costs one listing.) Only a "maybe sent" failure (a timeout or a reset after the
request left, a 5xx) makes the next run reconcile first; a lookup that fails sends nothing and
counts nothing. So an outage spends no retry budget: once the task's quick retries run out the
message waits in the database (`message_delivery_postpone`, released by the periodic job), and
is sent once Twilio is back, unless its purpose's deadline passed first (`send_deadline`: an
OTP past its validity expires with a reason; marketing re-checks quiet hours at the gate).

SQLite (development) has no row locks; the compare-and-swap claim keeps the lease exclusive
there too.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from tenants import twilio_codes
from tenants.twilio import TwilioError, tenant_client, twilio_errors

from .. import statuses
from ..compliance.gate import gate_evaluate
from ..ledgers.reachability import number_is_opted_out
from ..ledgers.services import opt_out_record
from ..models import GateDecision, GateReason, Message, MessageEvent, OptOutEvent, Purpose
from .retries import postpone_delay, send_deadline
from .segment_counts import segments_from_twilio

logger = logging.getLogger("commsportal.messaging")

__all__ = [
    "DeliveryRetry",
    "Outcome",
    "message_deliver",
    "message_delivery_abandon",
    "message_delivery_postpone",
    "send_lease",
    "status_callback_url",
]


#: Twilio's clock and ours may differ: the reconcile window starts this much earlier.
RECONCILE_SKEW = timedelta(minutes=5)
#: Messages per reconcile listing (one recipient, a short window: a page is plenty).
RECONCILE_LIMIT = 50
#: After a retryable failure, pollers (the bulk dispatcher) leave the row alone this long; the
#: task's own retry comes after its backoff regardless.
RETRY_HOLD = timedelta(seconds=10)
#: Why a 21610 answer becomes an opt-out in the ledger.
ERROR_21610_REASON = "Twilio answered 21610 when sending: recipient had opted out at Twilio"


class Outcome:
    """What `message_deliver` did (the task's return value)."""

    MISSING = "missing"  # no such outbound message
    DONE = "done"  # already has a SID, or is no longer pending: nothing to do
    LEASED = "leased"  # another worker holds an unexpired lease on it
    BLOCKED = "blocked"  # the gate said never, at send time
    DEFERRED = "deferred"  # the gate said later, at send time (send_after set)
    RECONCILED = "reconciled"  # an earlier attempt had reached Twilio: its SID was attached
    SENT = "sent"  # Twilio accepted it now
    FAILED = "failed"  # Twilio refused it for good (terminal error)
    EXPIRED = "expired"  # its purpose's deadline passed before it could be sent (failed, with why)
    POSTPONED = "postponed"  # Twilio kept failing: waits in the database (send_after) for a later try


class DeliveryRetry(Exception):
    """A retryable failure: the lease is released; try again later (the task backs off).

    `ambiguous` is True when Twilio may have acted (connection dropped after the request left,
    timeout, 5xx): the next attempt reconciles first, and waiting a little first gives Twilio's
    list time to show it. False for a refused connection or a 429: nothing reached Twilio.
    """

    def __init__(self, *, message_id: int, error: TwilioError) -> None:
        self.message_id = message_id
        self.error = error
        self.ambiguous = error.maybe_sent
        super().__init__(f"Message #{message_id}: {error}")


def send_lease() -> timedelta:
    """How long a worker's claim on a message lasts (longer than the task's hard time limit)."""
    return timedelta(seconds=getattr(settings, "MESSAGING_SEND_LEASE_SECONDS", 120))


def status_callback_url(message_id: int) -> str:
    """The StatusCallback of an outbound message: `?m=` lets the status webhook attach the SID
    to this row even when the worker never saved it."""
    return f"{settings.PUBLIC_BASE_URL}{reverse('webhook_messaging_status')}?m={message_id}"


# --- Delivery -----------------------------------------------------------------------------------


def message_deliver(*, message_id: int, worker_token: str | None = None) -> str:
    """Send one pending outbound message through Twilio, at most once (module docstring).

    Returns an `Outcome` value. Raises `DeliveryRetry` when it should be tried again later.
    `worker_token` identifies this run's lease; by default a fresh one. Never pass the same
    token to two runs that may overlap.
    """
    token = worker_token or uuid.uuid4().hex
    step = _attempt_begin(message_id, token, reconciled=False)
    if isinstance(step, str):
        return step
    message, must_reconcile = step
    counted = not must_reconcile  # whether this run counted an attempt (uncounted if not sent)
    try:
        with twilio_errors():
            client = tenant_client(message.tenant)
        if must_reconcile:
            found = _twilio_find(client=client, message=message)
            if found is not None:
                _attempt_succeeded(message, token, sid=found.sid, status=found.status, segments=found.num_segments)
                logger.info("message.send.reconciled", extra={"message_id": message.pk, "sid": found.sid})
                return Outcome.RECONCILED
            step = _attempt_begin(message_id, token, reconciled=True)
            if isinstance(step, str):
                return step
            message, _ = step
            counted = True
        with twilio_errors():
            created = client.messages.create(**_create_params(message))
    except TwilioError as exc:
        # Only a request that never reached Twilio is uncounted; one Twilio answered (a 429)
        # counts toward the budget, or a Twilio that keeps refusing would be asked forever.
        never_reached = not exc.maybe_sent and exc.status is None and exc.code is None
        return _attempt_failed(message, token, exc, uncount=counted and never_reached)
    _attempt_succeeded(message, token, sid=created.sid, status=created.status, segments=created.num_segments)
    logger.info("message.send.accepted", extra={"message_id": message.pk, "sid": created.sid})
    return Outcome.SENT


def message_delivery_abandon(*, message_id: int, reason: str) -> str:
    """Give up on a message after its retries ran out: mark it failed with `reason`.

    An earlier attempt may have reached Twilio, so it looks there once more first (outcome
    ``reconciled`` when found). A message another worker holds, or that is no longer pending,
    is left alone.
    """
    now = timezone.now()
    message = Message.all_tenants.select_related("tenant").filter(pk=message_id).first()
    if message is None:
        return Outcome.MISSING
    if message.sid or message.status != statuses.PENDING:
        return Outcome.DONE
    if _lease_held_by_other(message, token="", now=now):
        return Outcome.LEASED
    if message.send_attempts:
        try:
            with twilio_errors():
                found = _twilio_find(client=tenant_client(message.tenant), message=message)
        except TwilioError:
            found = None
        if found is not None:
            _attempt_succeeded(message, "", sid=found.sid, status=found.status, segments=found.num_segments)
            return Outcome.RECONCILED
    with transaction.atomic():
        changed = (
            _claimable(message_id, token="", now=now)
            .filter(status=statuses.PENDING, sid__isnull=True)
            .update(
                status=statuses.FAILED,
                status_updated_at=now,
                failure_reason=f"Gave up after {message.send_attempts} attempt(s): {reason}"[:2000],
                send_claim="",
                send_claimed_until=None,
            )
        )
        if changed:
            MessageEvent.objects.for_tenant(message.tenant).get_or_create(
                tenant=message.tenant, message_id=message_id, status=statuses.FAILED, defaults={"occurred_at": now}
            )
    logger.warning("message.send.abandoned", extra={"message_id": message_id, "reason": reason[:200]})
    return Outcome.FAILED if changed else Outcome.DONE


def message_delivery_postpone(*, message_id: int, reason: str) -> str:
    """Park a message whose quick retries ran out in the database: deferred (`send_after`)
    for the periodic release, which re-checks the gate and enqueues a fresh task.

    Why not a long Celery countdown: Redis redelivers ETA tasks after its visibility timeout,
    which would run them twice, and a database row survives a broker restart.
    """
    now = timezone.now()
    message = Message.all_tenants.filter(pk=message_id).only("created_at").first()
    if message is None:
        return Outcome.MISSING
    send_after = now + postpone_delay(age=now - message.created_at)
    changed = (
        _claimable(message_id, token="", now=now)
        .filter(status=statuses.PENDING, sid__isnull=True)
        .update(
            gate_decision=GateDecision.DEFER,
            gate_reason=GateReason.TWILIO_UNAVAILABLE,  # a code: the column holds the reason's name
            send_after=send_after,
            send_claim="",
            send_claimed_until=None,
        )
    )
    logger.warning(
        "message.send.postponed",
        extra={"message_id": message_id, "reason": reason[:200], "send_after": send_after.isoformat()},
    )
    return Outcome.POSTPONED if changed else Outcome.DONE


def _lease_held_by_other(message: Message, *, token: str, now: datetime) -> bool:
    return bool(
        message.send_claim
        and message.send_claim != token
        and message.send_claimed_until
        and message.send_claimed_until > now
    )


def _claimable(message_id: int, *, token: str, now: datetime):
    """The row, if no other worker holds a live lease on it: the compare-and-swap guard."""
    free = Q(send_claim="") | Q(send_claimed_until__isnull=True) | Q(send_claimed_until__lte=now)
    if token:
        free |= Q(send_claim=token)
    return Message.all_tenants.filter(pk=message_id).filter(free)


def _attempt_begin(message_id: int, token: str, *, reconciled: bool) -> tuple[Message, bool] | str:
    """Lock the row, check it still needs sending, claim the lease; unless a reconcile must
    come first, re-check the gate and count the attempt. Commits before returning."""
    now = timezone.now()
    lease_until = now + send_lease()
    with transaction.atomic():
        # By id across tenants on purpose: the task knows only the id; the row names its tenant,
        # and everything after this is scoped to it.
        message = (
            Message.all_tenants.select_for_update(of=("self",))
            .select_related("tenant")
            .filter(pk=message_id, direction=Message.Direction.OUTBOUND)
            .first()
        )
        if message is None:
            return Outcome.MISSING
        if message.sid or message.status != statuses.PENDING:
            if message.sid and message.accepted_at is None:
                # A status callback attached the SID (`?m=`): record when we learnt it went.
                Message.all_tenants.filter(pk=message_id, accepted_at__isnull=True).update(accepted_at=now)
            return Outcome.DONE
        if _lease_held_by_other(message, token=token, now=now):
            return Outcome.LEASED
        claim = _claimable(message_id, token=token, now=now).filter(status=statuses.PENDING, sid__isnull=True)

        if message.send_attempts and not reconciled:
            if not claim.update(send_claim=token, send_claimed_until=lease_until):
                return Outcome.LEASED
            message.send_claim, message.send_claimed_until = token, lease_until
            return message, True

        deadline = send_deadline(message)
        if deadline is not None and deadline.at <= now:
            return _attempt_expired(message, claim, reason=deadline.reason, now=now)

        [(_, verdict)] = gate_evaluate(
            tenant=message.tenant,
            recipients=[message.to_number],
            purpose=message.purpose or Purpose.TRANSACTIONAL,
            now=now,
            ahead_of=message.pk,
        )
        if verdict.decision == GateDecision.BLOCK:
            if not claim.update(
                status=statuses.BLOCKED,
                status_updated_at=now,
                gate_decision=verdict.decision,
                gate_reason=verdict.reason,
                send_after=None,
                send_claim="",
                send_claimed_until=None,
            ):
                return Outcome.LEASED
            logger.info("message.send.blocked", extra={"message_id": message_id, "reason": verdict.reason})
            return Outcome.BLOCKED
        if verdict.decision == GateDecision.DEFER:
            if not claim.update(
                gate_decision=verdict.decision,
                gate_reason=verdict.reason,
                send_after=verdict.send_after,
                send_claim="",
                send_claimed_until=None,
            ):
                return Outcome.LEASED
            logger.info("message.send.deferred", extra={"message_id": message_id, "reason": verdict.reason})
            return Outcome.DEFERRED
        attempts = message.send_attempts + 1
        if not claim.update(
            gate_decision=GateDecision.SEND,
            gate_reason="",
            send_attempts=attempts,
            last_attempt_at=now,
            send_claim=token,
            send_claimed_until=lease_until,
        ):
            return Outcome.LEASED
        message.send_attempts, message.last_attempt_at = attempts, now
        message.send_claim, message.send_claimed_until = token, lease_until
        return message, False


def _attempt_expired(message: Message, claim, *, reason: str, now: datetime) -> str:
    """Mark a message failed because its purpose's deadline passed: not worth sending now.
    Only reached when no earlier attempt may have reached Twilio (or the lookup found none)."""
    if not claim.update(
        status=statuses.FAILED,
        status_updated_at=now,
        failure_reason=reason[:2000],
        send_after=None,
        send_claim="",
        send_claimed_until=None,
    ):
        return Outcome.LEASED
    MessageEvent.objects.for_tenant(message.tenant).get_or_create(
        tenant=message.tenant,
        message_id=message.pk,
        status=statuses.FAILED,
        defaults={"occurred_at": now, "payload": {"error": reason[:500]}},
    )
    logger.info("message.send.expired", extra={"message_id": message.pk})
    return Outcome.EXPIRED


def _create_params(message: Message) -> dict:
    params = {"to": message.to_number, "body": message.body, "status_callback": status_callback_url(message.pk)}
    if message.messaging_service_sid:
        params["messaging_service_sid"] = message.messaging_service_sid
    if message.from_number:
        params["from_"] = message.from_number
    return params


def _attempt_succeeded(
    message: Message, token: str, *, sid: str, status: str | None, segments: str | None = None
) -> None:
    """Attach the SID Twilio gave (or reconciliation found) and release the lease; keep the
    segment count when Twilio told it (through a Messaging Service it answers 0: unknown)."""
    now = timezone.now()
    new_status = status if status in statuses.OUTBOUND_STATUSES - {statuses.PENDING, statuses.BLOCKED} else None
    new_status = new_status or statuses.ACCEPTED
    with transaction.atomic():
        row = Message.all_tenants.select_for_update().filter(pk=message.pk).first()
        if row is None:
            return
        update = ["failure_reason"]
        row.failure_reason = ""
        if row.send_claim == token or not row.send_claim:
            row.send_claim, row.send_claimed_until = "", None
            update += ["send_claim", "send_claimed_until"]
        if row.accepted_at is None:
            row.accepted_at = now
            update.append("accepted_at")
        if row.num_segments is None and segments_from_twilio(segments) is not None:
            row.num_segments = segments_from_twilio(segments)
            update.append("num_segments")
        if row.sid and row.sid != sid:
            logger.error("message.send.sid_conflict", extra={"message_id": row.pk, "sid": row.sid, "twilio_sid": sid})
        elif not row.sid:
            row.sid = sid
            update.append("sid")
        advanced = statuses.status_should_advance(row.status, new_status)
        if advanced:
            row.status, row.status_updated_at = new_status, now
            update += ["status", "status_updated_at"]
        try:
            with transaction.atomic():
                row.save(update_fields=update)
        except IntegrityError:
            # Another row already holds this SID (a status callback without `?m=` created it):
            # the message went. Never leave this row pending, or it would be sent again.
            holder = Message.all_tenants.filter(sid=sid).values_list("pk", flat=True).first()
            Message.all_tenants.filter(pk=row.pk).update(
                status=statuses.ACCEPTED,
                status_updated_at=now,
                accepted_at=now,
                send_claim="",
                send_claimed_until=None,
                failure_reason=f"Twilio accepted it as {sid}; its status is on message #{holder}.",
            )
            logger.error("message.send.sid_held_elsewhere", extra={"message_id": row.pk, "sid": sid, "holder": holder})
            return
        if advanced:
            MessageEvent.objects.for_tenant(message.tenant).get_or_create(
                tenant=message.tenant, message=row, status=new_status, defaults={"occurred_at": now}
            )


def _attempt_failed(message: Message, token: str, exc: TwilioError, *, uncount: bool) -> str:
    """Retryable: release the lease and raise `DeliveryRetry`. Terminal: mark failed.

    `uncount`: the attempt this run counted certainly never reached Twilio (refused, DNS), so
    it is taken back: it spends no retry budget and the next run needs no lookup.
    """
    now = timezone.now()
    if exc.retryable:
        update = {
            # No holder, so any run may take it; the time says "not before": the bulk dispatcher
            # skips rows whose send_claimed_until is ahead, and the periodic release counts
            # STALE_AFTER from it.
            "send_claim": "",
            "send_claimed_until": now + RETRY_HOLD,
            "failure_reason": f"Attempt {message.send_attempts} failed, will retry: {exc}"[:2000],
        }
        if uncount:
            update["send_attempts"] = F("send_attempts") - 1
            update["failure_reason"] = f"Not sent, will retry: {exc}"[:2000]
        claimed = _claimable(message.pk, token=token, now=now).filter(status=statuses.PENDING)
        if uncount:
            claimed = claimed.filter(send_attempts__gt=0)
        claimed.update(**update)
        logger.warning(
            "message.send.retry", extra={"message_id": message.pk, "code": exc.code, "attempt": message.send_attempts}
        )
        raise DeliveryRetry(message_id=message.pk, error=exc)
    code = exc.code if exc.code and exc.code > 599 else None  # an HTTP status is not a Twilio code
    with transaction.atomic():
        changed = (
            _claimable(message.pk, token=token, now=now)
            .filter(status=statuses.PENDING, sid__isnull=True)
            .update(
                status=statuses.FAILED,
                status_updated_at=now,
                error_code=code,
                failure_reason=exc.explanation or str(exc),
                send_claim="",
                send_claimed_until=None,
            )
        )
        if not changed:
            return Outcome.DONE
        MessageEvent.objects.for_tenant(message.tenant).get_or_create(
            tenant=message.tenant,
            message_id=message.pk,
            status=statuses.FAILED,
            defaults={"occurred_at": now, "error_code": code, "payload": {"error": str(exc)[:500]}},
        )
        if code == twilio_codes.OPTED_OUT and not number_is_opted_out(tenant=message.tenant, phone=message.to_number):
            # Twilio's opt-out list knew what ours did not: record it so the gate blocks next time.
            opt_out_record(
                tenant=message.tenant,
                phone=message.to_number,
                source=OptOutEvent.Source.ERROR_21610,
                sender=message.messaging_service_sid or message.from_number,
                reason=ERROR_21610_REASON,
                message=message,
                at=now,
            )
    logger.warning("message.send.failed", extra={"message_id": message.pk, "code": code})
    return Outcome.FAILED


# --- Reconciliation -----------------------------------------------------------------------------

_BODY_EQUIVALENTS = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u00a0": " ",
        "\u2026": "...",
    }
)


def _body_key(body: str | None) -> str:
    """Bodies compared as Twilio may have re-encoded them (Messaging Service Smart Encoding
    turns curly quotes, dashes and ellipses into GSM characters)."""
    return unicodedata.normalize("NFKC", (body or "").translate(_BODY_EQUIVALENTS)).strip()


def _twilio_find(*, client, message: Message):
    """The Twilio message an earlier attempt of `message` created, or None.

    Matches recipient, body and sender (the Messaging Service, or the From number) since the row
    became due, skipping SIDs another of our rows already holds; the oldest match wins.
    Raises TwilioError when Twilio can't be asked.
    """
    # Every attempt happened after the row was created and after it became due; the earlier of
    # the two is the safe bound (a wider window only costs a longer listing).
    since = min(filter(None, (message.created_at, message.send_after)))
    window_start = (since - RECONCILE_SKEW).astimezone(UTC)
    body = _body_key(message.body)

    def matching(instances) -> list:
        found = []
        for item in instances:
            if not str(item.direction or "").startswith("outbound"):
                continue
            if item.date_created and item.date_created < window_start:
                continue
            if _body_key(item.body) != body:
                continue
            if message.messaging_service_sid:
                if item.messaging_service_sid != message.messaging_service_sid:
                    continue
            elif item.from_ != message.from_number:
                continue
            found.append(item)
        return found

    with twilio_errors():
        candidates = matching(
            client.messages.list(to=message.to_number, date_sent_after=window_start, limit=RECONCILE_LIMIT)
        )
        if not candidates:
            # Twilio filters DateSent on the send time, which a message still queued there lacks.
            candidates = matching(client.messages.list(to=message.to_number, limit=RECONCILE_LIMIT))
    if not candidates:
        return None
    known = set(
        Message.objects.for_tenant(message.tenant)
        .filter(sid__in=[c.sid for c in candidates])
        .exclude(pk=message.pk)
        .values_list("sid", flat=True)
    )
    unclaimed = [c for c in candidates if c.sid not in known]
    if not unclaimed:
        return None
    return min(unclaimed, key=lambda c: c.date_created or datetime.max.replace(tzinfo=UTC))
