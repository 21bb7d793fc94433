"""Bulk sends, steps 1-2: the recipients CSV read and checked row by row, stored on a draft, and
previewed (rendered bodies, segments, and what the gate would do). See
`messaging.delivery.bulk.lifecycle` for the whole life of a bulk send."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction

from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.phones import phone_parse
from tenants.services import audit_record

from ...compliance.gate import gate_check_many
from ...csvfiles import CsvFileError, CsvTable, csv_open
from ...models import BulkSend, GateDecision, GateReason, MessageTemplate
from ..queueing import MAX_BODY_LENGTH
from ..segments import GSM7, GSM7_BASIC_CHARS, GSM7_EXTENSION_CHARS, UCS2, sms_segments
from ..templating import ParsedTemplate, template_parse

__all__ = [
    "LISTED_ERRORS",
    "MAX_CSV_BYTES",
    "BulkPreview",
    "CsvUpload",
    "bulk_csv_read",
    "bulk_draft_create",
    "bulk_preview",
    "bulk_rows_render",
]


MAX_CSV_BYTES = 10 * 1024 * 1024
MAX_RECIPIENTS = 100_000
LISTED_ERRORS = 200  # row errors kept for the preview; the count is always exact


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


def bulk_csv_read(*, content: bytes, body: str, region: str | None = None) -> CsvUpload:
    """Validate a recipients CSV against a template body.

    Column `phone` is required; every other column whose name is a valid variable name can be
    used by the template, and every variable the template uses must be a column. Problems of
    the whole file land in `file_errors` (nothing can be sent); problems of single rows are
    listed with their line number and the row is left out. National numbers are read as
    numbers of `region` (the tenant's); without it only international ones are accepted.
    """
    parsed = template_parse(body)
    upload = CsvUpload(body=body, variables=list(parsed.variables))
    try:
        table = csv_open(content, max_rows=MAX_RECIPIENTS, split_into="bulk sends", max_bytes=MAX_CSV_BYTES)
    except CsvFileError as exc:
        upload.file_errors.append(str(exc))
        return upload
    header = table.header
    _header_check(upload, header)
    if upload.file_errors:
        return upload

    if not body.strip():
        upload.file_errors.append("The template is empty.")
        return upload
    if _rows_read(upload, table, parsed=parsed, region=region) and not upload.recipients:
        upload.file_errors.append("No row can be sent: see the problems below.")
    return upload


def _header_check(upload: CsvUpload, header: list[str]) -> None:
    """Record the columns, and as file errors what makes the header unusable."""
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


def _rows_read(upload: CsvUpload, table: CsvTable, *, parsed: ParsedTemplate, region: str | None) -> bool:
    """Read every row into `upload`: recipients, row errors, duplicates. False when the file
    has more rows than MAX_RECIPIENTS (nothing can be sent then)."""
    check_length = bool(upload.variables) or len(upload.body) > MAX_BODY_LENGTH
    phone_at = table.header.index("phone")
    var_at = [table.header.index(v) for v in upload.variables]
    first_line: dict[str, int] = {}
    for line, values in table.rows():
        upload.rows_read = table.rows_read
        raw_phone = values[phone_at]
        try:
            phone = phone_parse(raw_phone, region=region)
        except ValidationError as exc:
            upload.add_error(line, raw_phone, " ".join(exc.messages))
            continue
        row_values = [values[i] for i in var_at]
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
    if table.error:
        upload.rows_read = table.rows_read
        upload.file_errors.append(table.error)
        upload.recipients = []
        return False
    return True


@transaction.atomic
def bulk_draft_create(
    *,
    tenant: Tenant,
    name: str,
    template: MessageTemplate,
    purpose: str,
    sender: str,
    upload: CsvUpload,
    audit: AuditContext,
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
        created_by=audit.actor,
    )
    audit_record(
        action="bulk.draft",
        tenant=tenant,
        audit=audit,
        target=name,
        details={"id": bulk.pk, "recipients": len(upload.recipients), "row_errors": upload.error_count},
    )
    return bulk


# --- Preview ----------------------------------------------------------------------------------

_GSM7_ALL = GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS


def _sms_stats_fast(text: str) -> tuple[str, int]:
    """(encoding, segments) as `messaging.delivery.segments` counts them, without walking short texts
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


def bulk_rows_render(upload: dict) -> tuple[ParsedTemplate, list[str], list[str]]:
    """The stored rows of a draft rendered: (template, phones, bodies). The preview samples them;
    queueing sends exactly these bodies."""
    parsed = template_parse(upload["body"])
    names = upload["variables"]
    phones, bodies = [], []
    for phone, values in upload["recipients"]:
        phones.append(phone)
        bodies.append(parsed.render(dict(zip(names, values, strict=True))))
    return parsed, phones, bodies


def bulk_preview(*, bulk: BulkSend, now: datetime | None = None, samples: int = 5) -> BulkPreview:
    """What launching `bulk` would send right now: rendered bodies, segments and the gate's verdicts."""
    upload = bulk.upload or {}
    _, phones, bodies = bulk_rows_render(upload)
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
