"""Bulk sends, step 4: one dispatcher per bulk send at a time (a Redis lock) hands its due
messages to `message_deliver` in id order, each after a pacing slot for the tenant's sender."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from tenants.models import Tenant

from ... import statuses
from ...models import BulkSend, GateDecision, Message, SendingPolicy
from ..attempts import DeliveryRetry, message_deliver, message_delivery_abandon
from ..pacing import pacing_acquire, pacing_key, redis_client
from ..retries import MAX_RETRIES

logger = logging.getLogger("messaging.bulk")  # a stable name: log routing and tests select it

__all__ = [
    "DispatchResult",
    "bulk_dispatch",
    "bulks_to_dispatch",
]


DISPATCH_BUDGET_SECONDS = 30.0  # one dispatcher run, well inside Celery's 60 s soft limit
#: The dispatch lock lives this long unless its holder renews it: a SIGKILLed dispatcher (its
#: worker killed, redeployed, out of memory) blocks its bulk send for at most this.
DISPATCH_LOCK_SECONDS = 5.0
#: How often the holder's heartbeat renews the lock: several renewals fit in one lifetime, so a
#: slow Twilio call or a long pacing wait never lets a live dispatcher's lock lapse.
DISPATCH_LOCK_RENEW_SECONDS = 1.0
DEFAULT_RATE = 1.0  # messages per second per sender when the tenant has no sending policy


# --- Dispatch -----------------------------------------------------------------------------------

_RELEASE_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_EXTEND_LUA = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)
_local_locks: dict[str, tuple[str, float]] = {}


class _DispatchLock:
    """One dispatcher per bulk send across all workers (Redis SET NX with a short expiry, renewed
    by a heartbeat thread while its holder lives, released only by its owner). A killed holder's
    heartbeat dies with it, so the lock frees itself within DISPATCH_LOCK_SECONDS. Without Redis
    (embedded demo) the lock is per process; `message_deliver`'s own send lease still keeps two
    processes from sending the same message."""

    def __init__(self, bulk_id: int, ttl: float = DISPATCH_LOCK_SECONDS):
        self.key = f"commsportal:bulk-dispatch:{bulk_id}"
        self.token = uuid.uuid4().hex
        self.ttl_ms = int(ttl * 1000)
        self.url = settings.REDIS_URL
        self.lost = threading.Event()  # renewal failed: another dispatcher may hold it now
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> bool:
        if self.url:
            taken = bool(redis_client(self.url).set(self.key, self.token, nx=True, px=self.ttl_ms))
        else:
            holder = _local_locks.get(self.key)
            taken = not (holder and holder[1] > time.monotonic())
            if taken:
                _local_locks[self.key] = (self.token, time.monotonic() + self.ttl_ms / 1000)
        if taken:
            self._heartbeat = threading.Thread(target=self._renew_until_stopped, daemon=True, name=self.key)
            self._heartbeat.start()
        return taken

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(DISPATCH_LOCK_RENEW_SECONDS):
            try:
                renewed = self.extend()
            except Exception:  # Redis unreachable: the lock may lapse; stop sending to be safe
                logger.warning("bulk.dispatch.lock_renew_failed key=%s", self.key, exc_info=True)
                renewed = False
            if not renewed:
                self.lost.set()
                return

    def extend(self) -> bool:
        """Push the expiry out again; False when the lock is no longer ours."""
        if self.url:
            return bool(redis_client(self.url).eval(_EXTEND_LUA, 1, self.key, self.token, self.ttl_ms))
        if _local_locks.get(self.key, ("",))[0] != self.token:
            return False
        _local_locks[self.key] = (self.token, time.monotonic() + self.ttl_ms / 1000)
        return True

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=DISPATCH_LOCK_RENEW_SECONDS + 5)
        if self.url:
            redis_client(self.url).eval(_RELEASE_LUA, 1, self.key, self.token)
        elif _local_locks.get(self.key, ("",))[0] == self.token:
            del _local_locks[self.key]

    def wait_acquire(self, *, timeout: float) -> bool:
        """`acquire`, retried for up to `timeout` seconds: long enough (over the lock's lifetime)
        to outlast the lock of a dispatcher that died with the worker being restarted."""
        deadline = time.monotonic() + timeout
        while not self.acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.25)
        return True


def _rate_for(tenant: Tenant) -> float:
    rate = SendingPolicy.objects.filter(tenant=tenant).values_list("messages_per_second", flat=True).first()
    return rate if rate and rate > 0 else DEFAULT_RATE


def _next_message_id(bulk: BulkSend, *, after_id: int, now: datetime) -> int | None:
    """The next message to send, only while the bulk send is running (pausing stops here).

    Deferred rows are not taken: `deferred_messages_release` turns them back into due `send`
    rows (without enqueueing bulk rows), and a later run picks them up.
    """
    return (
        Message.objects.for_tenant(bulk.tenant)
        .filter(
            bulk_send=bulk,
            bulk_send__status=BulkSend.Status.RUNNING,
            status=statuses.PENDING,
            gate_decision=GateDecision.SEND,
            sid__isnull=True,
            id__gt=after_id,
        )
        .filter(Q(send_after__isnull=True) | Q(send_after__lte=now))
        .filter(Q(send_claimed_until__isnull=True) | Q(send_claimed_until__lt=now))
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )


def _complete_if_done(bulk: BulkSend) -> bool:
    """Mark a running bulk send completed once no message of it is pending (deferred included)."""
    if (bulk.upload or {}).get("recipients"):
        return False  # not queued yet
    if Message.objects.for_tenant(bulk.tenant).filter(bulk_send=bulk, status=statuses.PENDING).exists():
        return False
    return bool(
        BulkSend.objects.for_tenant(bulk.tenant)
        .filter(pk=bulk.pk, status=BulkSend.Status.RUNNING)
        .update(status=BulkSend.Status.COMPLETED, finished_at=timezone.now())
    )


@dataclass
class DispatchResult:
    handed_over: int = 0
    outcomes: Counter = field(default_factory=Counter)
    more: bool = False  # due messages remain: run again right away
    backoff: bool = False  # Twilio keeps failing transiently (429, 5xx): run again after a pause
    busy: bool = False  # another dispatcher holds this bulk send
    completed: bool = False


def _deliver_one(message_id: int, deliver) -> str:
    """`message_deliver`, with a transient failure left for a later run (the row stays pending)
    and given up on, like the delivery task does, after MAX_RETRIES attempts."""
    try:
        return deliver(message_id=message_id)
    except DeliveryRetry as exc:
        attempts = Message.all_tenants.filter(pk=message_id).values_list("send_attempts", flat=True).first() or 0
        if attempts >= MAX_RETRIES:
            return message_delivery_abandon(message_id=message_id, reason=str(exc.error))
        return RETRY


RETRY = "retry"
CONSECUTIVE_RETRIES_BACKOFF = 3


def bulk_dispatch(
    *, bulk_id: int, budget_seconds: float = DISPATCH_BUDGET_SECONDS, deliver=None, wait_for_lock: bool = False
) -> DispatchResult:
    """Send a running bulk send's due messages in id order, paced per (tenant, sender), for at
    most `budget_seconds`; returns what happened. Safe to run concurrently and repeatedly.

    `wait_for_lock`: when another dispatcher holds the bulk send, wait out the lock's lifetime
    instead of ending at once (a worker that just started: the holder may have died with the
    worker it replaces, and its lock lapses within DISPATCH_LOCK_SECONDS).

    `deliver` is `messaging.delivery.attempts.message_deliver` (tests may wrap it to observe the order)."""
    deliver = deliver or message_deliver
    result = DispatchResult()
    bulk = BulkSend.all_tenants.select_related("tenant").filter(pk=bulk_id).first()
    if bulk is None or bulk.status != BulkSend.Status.RUNNING:
        return result
    lock = _DispatchLock(bulk_id)
    taken = lock.wait_acquire(timeout=DISPATCH_LOCK_SECONDS + 1) if wait_for_lock else lock.acquire()
    if not taken:
        result.busy = True
        return result
    try:
        rate = _rate_for(bulk.tenant)
        key = pacing_key(tenant_id=bulk.tenant_id, sender=bulk.sender or bulk.tenant.messaging_service_sid)
        deadline = time.monotonic() + budget_seconds
        last_id = retries_in_a_row = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or lock.lost.is_set():
                result.more = True
                break
            # Slot first, message second: a pause that lands while we wait for the slot is
            # seen by the query that picks the message.
            if not pacing_acquire(key=key, rate=rate, timeout=remaining):
                result.more = True
                break
            message_id = _next_message_id(bulk, after_id=last_id, now=timezone.now())
            if message_id is None:
                break
            last_id = message_id
            outcome = _deliver_one(message_id, deliver)
            result.handed_over += 1
            result.outcomes[outcome] += 1
            retries_in_a_row = retries_in_a_row + 1 if outcome == RETRY else 0
            if retries_in_a_row >= CONSECUTIVE_RETRIES_BACKOFF:
                result.backoff = True  # Twilio is rate limiting or down: don't burn the list
                break
        if not result.more and not result.backoff:
            result.completed = _complete_if_done(bulk)
    finally:
        lock.release()
    logger.info(
        "bulk.dispatch bulk=%s handed_over=%s outcomes=%s more=%s backoff=%s completed=%s",
        bulk_id,
        result.handed_over,
        dict(result.outcomes),
        result.more,
        result.backoff,
        result.completed,
    )
    return result


def bulks_to_dispatch() -> list[int]:
    """Running bulk sends whose messages are queued (platform job: crosses tenants on purpose)."""
    return list(
        BulkSend.all_tenants.filter(status=BulkSend.Status.RUNNING)
        .exclude(upload__has_key="recipients")
        .values_list("id", flat=True)
    )
