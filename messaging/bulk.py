"""Bulk sends: a CSV of recipients rendered through a template, checked, queued and paced out.

The life of a bulk send:

1. **Upload** (`bulk_csv_read`, `bulk_draft_create`): the CSV is validated row by row (phone
   numbers to E.164, every variable the template uses present, duplicates collapsed onto their
   first line) and stored, with the template body as it was at upload, on a `draft` BulkSend
   in the database. Keeping it there, not in a temp file or the cache, means the preview and
   the launch may run on different web servers, and launching is one transaction: either the
   messages exist and the stored rows are gone, or nothing happened.
2. **Preview** (`bulk_preview`): rendered bodies, their encodings and segment counts, and what
   the compliance gate would do with each recipient right now (`gate_check_many`, batched).
3. **Launch** (`bulk_launch`) marks it `running`; **queueing** (`bulk_queue`) renders every row
   and creates the messages with `messages_queue_many` (one batched gate check, bulk inserts).
   Small sends queue inside the launch request; big ones in a Celery task.
4. **Dispatch** (`bulk_dispatch`, run by `messaging.bulk_tasks`): one dispatcher per bulk send
   at a time (a Redis lock), taking pending messages in id order, each after a pacing slot for
   the tenant's sender (`messaging.pacing`), and handing it to `message_deliver`. Pausing or
   cancelling takes effect before the next message: the query that picks it requires the bulk
   send to be running.
"""

from __future__ import annotations

import csv
import io
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from tenants.models import Tenant
from tenants.phones import phone_normalize
from tenants.services import audit_record

from . import statuses
from .models import BulkSend, GateDecision, GateReason, Message, MessageTemplate, SendingPolicy
from .pacing import pacing_acquire, pacing_key, redis_client
from .segments import GSM7, GSM7_BASIC_CHARS, GSM7_EXTENSION_CHARS, UCS2, sms_segments
from .sending import MAX_BODY_LENGTH
from .templating import ParsedTemplate, template_parse

logger = logging.getLogger(__name__)

__all__ = [
    "BulkPreview",
    "CsvUpload",
    "DispatchResult",
    "bulk_cancel",
    "bulk_csv_read",
    "bulk_dispatch",
    "bulk_draft_create",
    "bulk_launch",
    "bulk_list",
    "bulk_pause",
    "bulk_preview",
    "bulk_progress",
    "bulk_progress_many",
    "bulk_queue",
    "bulk_resume",
    "bulks_to_dispatch",
    "bulks_to_queue",
]

MAX_CSV_BYTES = 10 * 1024 * 1024
MAX_RECIPIENTS = 100_000
LISTED_ERRORS = 200  # row errors kept for the preview; the count is always exact
INLINE_QUEUE_MAX = 2_000  # recipients queued inside the launch request; more go to a task
DISPATCH_BUDGET_SECONDS = 30.0  # one dispatcher run, well inside Celery's 60 s soft limit
DISPATCH_LOCK_SECONDS = 120
DEFAULT_RATE = 1.0  # messages per second per sender when the tenant has no sending policy

PROGRESS_BUCKETS = ("pending", "deferred", "sent", "delivered", "failed", "blocked", "canceled")


# --- Upload -----------------------------------------------------------------------------------


@dataclass
class CsvUpload:
    """A validated CSV: what a draft bulk send stores between preview and launch."""

    body: str
    variables: list[str]
    columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    recipients: list[list] = field(default_factory=list)  # [e164, [value per variable]]
    errors: list[dict] = field(default_factory=list)  # {line, value, message}, the first LISTED_ERRORS
    error_count: int = 0
    duplicates: int = 0
    rows_read: int = 0
    file_errors: list[str] = field(default_factory=list)

    def add_error(self, line: int, value: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < LISTED_ERRORS:
            self.errors.append({"line": line, "value": value[:40], "message": message})

    def as_json(self) -> dict:
        return {
            "body": self.body,
            "variables": self.variables,
            "columns": self.columns,
            "ignored_columns": self.ignored_columns,
            "recipients": self.recipients,
            "errors": self.errors,
            "error_count": self.error_count,
            "duplicates": self.duplicates,
            "rows_read": self.rows_read,
        }


def _column_name(raw: str) -> str:
    return raw.strip().lower().replace(" ", "_").replace("-", "_")


def bulk_csv_read(*, content: bytes, body: str) -> CsvUpload:
    """Validate a recipients CSV against a template body.

    Column `phone` is required; every other column whose name is a valid variable name can be
    used by the template, and every variable the template uses must be a column. Problems of
    the whole file land in `file_errors` (nothing can be sent); problems of single rows are
    listed with their line number and the row is left out.
    """
    parsed = template_parse(body)
    upload = CsvUpload(body=body, variables=list(parsed.variables))
    if len(content) > MAX_CSV_BYTES:
        upload.file_errors.append(f"The file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB: split it.")
        return upload
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        upload.file_errors.append("The file is not UTF-8 text. In Excel, save it as “CSV UTF-8”.")
        return upload
    if not text.strip():
        upload.file_errors.append("The file is empty.")
        return upload
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel  # a single column: nothing to sniff
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    header = [_column_name(h) for h in next(reader, [])]
    upload.columns = [h for h in header if h]
    dupes = sorted({h for h in upload.columns if upload.columns.count(h) > 1})
    if dupes:
        upload.file_errors.append(f"Column{'s' if len(dupes) > 1 else ''} named twice: {', '.join(dupes)}.")
    if "phone" not in header:
        upload.file_errors.append(
            "No “phone” column. The first row must name the columns: phone, then one per template variable."
        )
    missing = [v for v in upload.variables if v not in header]
    if missing:
        upload.file_errors.append(
            "The template uses "
            + ", ".join(f"{{{{{v}}}}}" for v in missing)
            + f" but the file has no column{'s' if len(missing) > 1 else ''} "
            + ", ".join(missing)
            + "."
        )
    upload.ignored_columns = [h for h in upload.columns if h != "phone" and h not in upload.variables]
    if upload.file_errors:
        return upload

    if not body.strip():
        upload.file_errors.append("The template is empty.")
        return upload
    # Rendering every row costs more than the check itself: only a template that could grow
    # past Twilio's limit with its values is rendered here.
    check_length = bool(upload.variables) or len(body) > MAX_BODY_LENGTH
    phone_at = header.index("phone")
    var_at = [header.index(v) for v in upload.variables]
    width = len(header)
    first_line: dict[str, int] = {}
    for values in reader:
        if not any(v.strip() for v in values):
            continue  # blank line
        upload.rows_read += 1
        if upload.rows_read > MAX_RECIPIENTS:
            upload.file_errors.append(f"More than {MAX_RECIPIENTS:,} rows: split the file into several bulk sends.")
            upload.recipients = []
            return upload
        line = reader.line_num
        if len(values) < width:
            values = values + [""] * (width - len(values))
        raw_phone = values[phone_at].strip()
        try:
            phone = phone_normalize(raw_phone)
        except ValidationError as exc:
            upload.add_error(line, raw_phone, " ".join(exc.messages))
            continue
        row_values = [values[i].strip() for i in var_at]
        empty = [name for name, value in zip(upload.variables, row_values, strict=True) if not value]
        if empty:
            upload.add_error(line, raw_phone, "Missing " + ", ".join(empty) + " for the template.")
            continue
        if phone in first_line:
            upload.duplicates += 1  # collapsed onto the first line with this number
            continue
        if check_length:
            length = len(parsed.render(dict(zip(upload.variables, row_values, strict=True))))
            if length > MAX_BODY_LENGTH:
                upload.add_error(
                    line, raw_phone, f"The message would be {length:,} characters; Twilio takes {MAX_BODY_LENGTH:,}."
                )
                continue
        first_line[phone] = line
        upload.recipients.append([phone, row_values])
    if not upload.recipients:
        upload.file_errors.append("No row can be sent: see the problems below.")
    return upload


@transaction.atomic
def bulk_draft_create(
    *, tenant: Tenant, name: str, template: MessageTemplate, purpose: str, sender: str, upload: CsvUpload, request=None
) -> BulkSend:
    """Store a validated upload as a draft bulk send (nothing is sent until it is launched); audited."""
    if upload.file_errors or not upload.recipients:
        raise ValidationError(upload.file_errors or ["No recipients."])
    if template.tenant_id != tenant.pk:
        raise ValidationError("That template belongs to another tenant.")
    bulk = BulkSend.objects.create(
        tenant=tenant,
        name=name,
        template=template,
        purpose=purpose,
        sender=sender,
        status=BulkSend.Status.DRAFT,
        total_recipients=len(upload.recipients),
        upload=upload.as_json(),
        created_by=request.user if request is not None and request.user.is_authenticated else None,
    )
    audit_record(
        action="bulk.draft",
        tenant=tenant,
        request=request,
        target=name,
        details={"id": bulk.pk, "recipients": len(upload.recipients), "row_errors": upload.error_count},
    )
    return bulk


# --- Preview ----------------------------------------------------------------------------------

_GSM7_ALL = GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS


def _sms_stats_fast(text: str) -> tuple[str, int]:
    """(encoding, segments) as `messaging.segments` counts them, without walking short texts
    character by character: only a text longer than one segment needs the exact split."""
    if _GSM7_ALL.issuperset(text):
        length = len(text) + sum(text.count(ch) for ch in GSM7_EXTENSION_CHARS)
        return GSM7, (0 if not text else 1) if length <= 160 else sms_segments(text)
    length = len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)
    return UCS2, 1 if length <= 70 else sms_segments(text)


@dataclass
class RenderedSample:
    phone: str
    body: str
    encoding: str
    segments: int
    line: int = 0


@dataclass
class BulkPreview:
    recipients: int
    send_now: int
    deferred: int
    blocked: int
    blocked_by_reason: list[tuple[str, int]]  # (label, count), most first
    deferred_by_reason: list[tuple[str, int]]
    encodings: dict[str, int]  # GSM-7 / UCS-2 -> messages
    segments_histogram: list[tuple[int, int]]  # (segments per message, messages)
    segments_total: int  # over the messages that will be sent (now or later)
    segments_all: int  # over every recipient, blocked ones included
    samples: list[RenderedSample]
    longest: RenderedSample | None

    @property
    def ucs2(self) -> int:
        return self.encodings.get(UCS2, 0)

    @property
    def to_send(self) -> int:
        return self.send_now + self.deferred


def _render_rows(upload: dict) -> tuple[ParsedTemplate, list[str], list[str]]:
    parsed = template_parse(upload["body"])
    names = upload["variables"]
    phones, bodies = [], []
    for phone, values in upload["recipients"]:
        phones.append(phone)
        bodies.append(parsed.render(dict(zip(names, values, strict=True))))
    return parsed, phones, bodies


def bulk_preview(*, bulk: BulkSend, now: datetime | None = None, samples: int = 5) -> BulkPreview:
    """What launching `bulk` would send right now: rendered bodies, segments and the gate's verdicts."""
    from .gate import gate_check_many

    upload = bulk.upload or {}
    _, phones, bodies = _render_rows(upload)
    verdicts = gate_check_many(tenant=bulk.tenant, recipients=phones, purpose=bulk.purpose, now=now)
    stats_cache: dict[str, tuple[str, int]] = {}
    encodings: Counter[str] = Counter()
    histogram: Counter[int] = Counter()
    blocked_reasons: Counter[str] = Counter()
    deferred_reasons: Counter[str] = Counter()
    send_now = deferred = blocked = seg_total = seg_all = 0
    longest_at, longest_segments = -1, -1
    for i, (phone, body) in enumerate(zip(phones, bodies, strict=True)):
        stats = stats_cache.get(body)
        if stats is None:
            stats = stats_cache[body] = _sms_stats_fast(body)
        encoding, segments = stats
        encodings[encoding] += 1
        histogram[segments] += 1
        seg_all += segments
        if segments > longest_segments:
            longest_at, longest_segments = i, segments
        verdict = verdicts.get(phone)
        decision = getattr(verdict, "decision", GateDecision.SEND)
        if decision == GateDecision.BLOCK:
            blocked += 1
            blocked_reasons[verdict.reason] += 1
            continue
        seg_total += segments
        if decision == GateDecision.DEFER:
            deferred += 1
            deferred_reasons[verdict.reason] += 1
        else:
            send_now += 1
    labels = dict(GateReason.choices)

    def sample(i: int) -> RenderedSample:
        encoding, segments = stats_cache[bodies[i]]
        return RenderedSample(phone=phones[i], body=bodies[i], encoding=encoding, segments=segments)

    return BulkPreview(
        recipients=len(phones),
        send_now=send_now,
        deferred=deferred,
        blocked=blocked,
        blocked_by_reason=[(labels.get(r, r or "Blocked"), n) for r, n in blocked_reasons.most_common()],
        deferred_by_reason=[(labels.get(r, r or "Deferred"), n) for r, n in deferred_reasons.most_common()],
        encodings={GSM7: encodings.get(GSM7, 0), UCS2: encodings.get(UCS2, 0)},
        segments_histogram=sorted(histogram.items()),
        segments_total=seg_total,
        segments_all=seg_all,
        samples=[sample(i) for i in range(min(samples, len(phones)))],
        longest=sample(longest_at) if longest_at >= samples else None,
    )


# --- Launch and queueing ----------------------------------------------------------------------


def _locked(bulk: BulkSend) -> BulkSend:
    return BulkSend.objects.for_tenant(bulk.tenant).select_for_update().select_related("tenant").get(pk=bulk.pk)


def bulk_launch(*, bulk: BulkSend, request=None) -> BulkSend:
    """Start a draft: it becomes `running` and its messages are queued (here, or in a task when
    there are many); audited. Raises ValidationError when it cannot be launched."""
    from .bulk_tasks import bulk_queue_task

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
            request=request,
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
            transaction.on_commit(lambda: bulk_queue_task.delay(bulk_id))
    bulk.refresh_from_db()
    return bulk


@transaction.atomic
def bulk_queue(*, bulk_id: int, now: datetime | None = None) -> dict[str, int]:
    """Render and queue the stored rows of a launched bulk send, once (idempotent).

    The messages are created and the stored rows dropped in the same transaction, so a retried
    task finds nothing left to do. A bulk send cancelled before this ran queues nothing.
    """
    from .bulk_tasks import bulk_dispatch_task
    from .sending import messages_queue_many

    bulk = BulkSend.all_tenants.select_for_update().select_related("tenant").filter(pk=bulk_id).first()
    if bulk is None or bulk.status not in (BulkSend.Status.RUNNING, BulkSend.Status.PAUSED):
        return {}
    upload = bulk.upload or {}
    if not upload.get("recipients"):
        return {}
    _, phones, bodies = _render_rows(upload)
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
        transaction.on_commit(lambda: bulk_dispatch_task.delay(bulk_id))
    return dict(counts or {})


# --- Pause, resume, cancel ----------------------------------------------------------------------


def _transition(*, bulk: BulkSend, allowed: tuple[str, ...], to: str, action: str, request=None, details=None):
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
        action=action, tenant=bulk.tenant, request=request, target=bulk.name, details={"id": bulk.pk, **(details or {})}
    )
    return bulk


@transaction.atomic
def bulk_pause(*, bulk: BulkSend, request=None) -> BulkSend:
    """Stop picking further messages; a message already handed to Twilio still goes. Audited."""
    return _transition(
        bulk=bulk, allowed=(BulkSend.Status.RUNNING,), to=BulkSend.Status.PAUSED, action="bulk.pause", request=request
    )


@transaction.atomic
def bulk_resume(*, bulk: BulkSend, request=None) -> BulkSend:
    """Carry on where the pause stopped (the gate re-checks every message at send time). Audited."""
    from .bulk_tasks import bulk_dispatch_task

    bulk = _transition(
        bulk=bulk, allowed=(BulkSend.Status.PAUSED,), to=BulkSend.Status.RUNNING, action="bulk.resume", request=request
    )
    bulk_id = bulk.pk
    transaction.on_commit(lambda: bulk_dispatch_task.delay(bulk_id))
    return bulk


@transaction.atomic
def bulk_cancel(*, bulk: BulkSend, request=None, now: datetime | None = None) -> int:
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
        request=request,
        details={"canceled_messages": canceled, "never_queued": unqueued},
    )
    return canceled


# --- Progress -----------------------------------------------------------------------------------


def _bucket(status: str, gate_decision: str) -> str:
    if status == statuses.PENDING:
        return "deferred" if gate_decision == GateDecision.DEFER else "pending"
    if status == statuses.BLOCKED:
        return "blocked"
    if status in (statuses.DELIVERED, statuses.READ):
        return "delivered"
    if status in (statuses.FAILED, statuses.UNDELIVERED):
        return "failed"
    if status == statuses.CANCELED:
        return "canceled"
    return "sent"  # accepted … partially delivered: with Twilio or the carrier


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


# --- Dispatch -----------------------------------------------------------------------------------

_RELEASE_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_EXTEND_LUA = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)
_local_locks: dict[str, tuple[str, float]] = {}


class _DispatchLock:
    """One dispatcher per bulk send across all workers (Redis SET NX with an expiry, released
    only by its owner). Without Redis (embedded demo) the lock is per process; `message_deliver`'s
    own send lease still keeps two processes from sending the same message."""

    def __init__(self, bulk_id: int, ttl: float = DISPATCH_LOCK_SECONDS):
        self.key = f"commsportal:bulk-dispatch:{bulk_id}"
        self.token = uuid.uuid4().hex
        self.ttl_ms = int(ttl * 1000)
        self.url = settings.REDIS_URL

    def acquire(self) -> bool:
        if self.url:
            return bool(redis_client(self.url).set(self.key, self.token, nx=True, px=self.ttl_ms))
        holder = _local_locks.get(self.key)
        if holder and holder[1] > time.monotonic():
            return False
        _local_locks[self.key] = (self.token, time.monotonic() + self.ttl_ms / 1000)
        return True

    def extend(self) -> None:
        if self.url:
            redis_client(self.url).eval(_EXTEND_LUA, 1, self.key, self.token, self.ttl_ms)
        elif self.key in _local_locks:
            _local_locks[self.key] = (self.token, time.monotonic() + self.ttl_ms / 1000)

    def release(self) -> None:
        if self.url:
            redis_client(self.url).eval(_RELEASE_LUA, 1, self.key, self.token)
        elif _local_locks.get(self.key, ("",))[0] == self.token:
            del _local_locks[self.key]


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
    from .sending import DeliveryRetry, message_delivery_abandon
    from .tasks import MAX_RETRIES

    try:
        return deliver(message_id=message_id)
    except DeliveryRetry as exc:
        attempts = Message.all_tenants.filter(pk=message_id).values_list("send_attempts", flat=True).first() or 0
        if attempts >= MAX_RETRIES:
            return message_delivery_abandon(message_id=message_id, reason=str(exc.error))
        return RETRY


RETRY = "retry"
CONSECUTIVE_RETRIES_BACKOFF = 3


def bulk_dispatch(*, bulk_id: int, budget_seconds: float = DISPATCH_BUDGET_SECONDS, deliver=None) -> DispatchResult:
    """Send a running bulk send's due messages in id order, paced per (tenant, sender), for at
    most `budget_seconds`; returns what happened. Safe to run concurrently and repeatedly.

    `deliver` is `messaging.sending.message_deliver` (tests may wrap it to observe the order)."""
    if deliver is None:
        from .sending import message_deliver as deliver

    result = DispatchResult()
    bulk = BulkSend.all_tenants.select_related("tenant").filter(pk=bulk_id).first()
    if bulk is None or bulk.status != BulkSend.Status.RUNNING:
        return result
    lock = _DispatchLock(bulk_id)
    if not lock.acquire():
        result.busy = True
        return result
    try:
        rate = _rate_for(bulk.tenant)
        key = pacing_key(tenant_id=bulk.tenant_id, sender=bulk.sender or bulk.tenant.messaging_service_sid)
        deadline = time.monotonic() + budget_seconds
        last_id = retries_in_a_row = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
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
            if result.handed_over % 20 == 0:
                lock.extend()
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


def bulks_to_queue() -> list[int]:
    """Launched bulk sends whose rows are still waiting to be queued (a lost task is retried)."""
    return list(
        BulkSend.all_tenants.filter(
            status__in=[BulkSend.Status.RUNNING, BulkSend.Status.PAUSED], upload__has_key="recipients"
        ).values_list("id", flat=True)
    )
