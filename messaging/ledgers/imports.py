"""CSV imports into the opt-out and consent ledgers, with a dry run that writes nothing.

Both imports follow the same rules:

* Every row is checked first; the report lists each problem with the file's line number.
  One invalid row and nothing is imported: half an import is worse than none, because nobody
  can tell afterwards which half went in.
* Rows that would change nothing (a duplicate within the file, a number already opted out, a
  consent already in the ledger) are skipped and reported, not errors: re-running the same
  file is safe.
* Look-ups are batched (one query per 500 numbers, never one per row) and a real import runs
  its check again inside the same transaction as its writes.

The uploaded bytes of a dry run are kept for a short while in the cache (keyed by tenant, user
and a random token), encrypted, so that "Import now" doesn't make the admin pick the file again.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from cryptography.fernet import InvalidToken
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tenants.audit import AuditContext
from tenants.crypto import fernet
from tenants.models import Tenant
from tenants.phones import phone_parse, tenant_phone_region
from tenants.services import audit_record

from ..csvfiles import CsvFileError, CsvTable, csv_open
from ..models import ConsentDisclosure, ConsentEvent, OptOutEvent, Purpose, disclosure_hash
from .selectors import opt_out_latest_for_phones
from .services import OptOutRow, opt_out_bulk_record

__all__ = [
    "CONSENT_COLUMNS",
    "OPT_OUT_COLUMNS",
    "ImportReport",
    "consent_import_apply",
    "consent_import_check",
    "opt_out_import_apply",
    "opt_out_import_check",
    "upload_discard",
    "upload_fetch",
    "upload_stash",
]

MAX_ROWS = 20_000
STASH_SECONDS = 30 * 60
OPT_OUT_COLUMNS = ("phone", "reason", "opted_out_at")
CONSENT_COLUMNS = (
    "phone",
    "purpose",
    "action",
    "method",
    "captured_at",
    "source",
    "disclosure_text",
    "disclosure_version",
    "ip_address",
    "user_agent",
)
_CONSENT_REQUIRED = ("phone", "purpose", "action", "method", "captured_at")
_CHUNK = 500


@dataclass(frozen=True)
class RowIssue:
    line: int
    value: str  # what the row said (the number as typed), for the admin to find it
    message: str


@dataclass
class ImportReport:
    total_rows: int = 0
    rows: list = field(default_factory=list)  # what a real import writes
    errors: list[RowIssue] = field(default_factory=list)
    skipped: list[RowIssue] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    imported: int | None = None  # set by a real import

    @property
    def ok(self) -> bool:
        return not self.errors and not self.file_errors

    @property
    def to_import(self) -> int:
        return len(self.rows)


# --- Reading ---------------------------------------------------------------------------------


def _read(content: bytes, report: ImportReport, *, known: tuple[str, ...], required: tuple[str, ...]):
    """Rows of the CSV as (line number, {column: stripped value}), or None on a file error."""
    try:
        table = csv_open(content, max_rows=MAX_ROWS, split_into="imports")
    except CsvFileError as exc:
        report.file_errors.append(str(exc))
        return None
    missing = [name for name in required if name not in table.header]
    if missing:
        report.file_errors.append(
            f"Missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}. "
            f"The first row must name the columns ({', '.join(known)})."
        )
        return None
    report.ignored_columns = [h for h in table.header if h and h not in known]
    return _rows(table, report)


def _rows(table: CsvTable, report: ImportReport) -> Iterator[tuple[int, dict[str, str]]]:
    for line, values in table.rows():
        report.total_rows = table.rows_read
        yield line, {name: value for name, value in zip(table.header, values, strict=False) if name}
    if table.error:
        report.total_rows = table.rows_read
        report.file_errors.append(table.error)


def _parse_when(raw: str, *, now: datetime) -> datetime:
    """An ISO 8601 date or date-time; dates mean midnight UTC, naive times are UTC."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationError(f"“{raw[:40]}” is not an ISO date, e.g. 2025-04-11 or 2025-04-11T14:30:00Z.") from exc
    if len(raw) <= 10:  # a bare date
        value = datetime.combine(value.date(), time.min)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    if value > now + timedelta(minutes=5):
        raise ValidationError(f"{raw[:40]} is in the future.")
    return value


# --- Opt-outs --------------------------------------------------------------------------------


def opt_out_import_check(*, tenant: Tenant, content: bytes) -> ImportReport:
    """Validate an opt-out CSV (`phone`, optional `reason`, `opted_out_at`) without writing."""
    report = ImportReport()
    rows = _read(content, report, known=OPT_OUT_COLUMNS, required=("phone",))
    if rows is None:
        return report
    now = timezone.now()
    region = tenant_phone_region(tenant)
    first_line: dict[str, int] = {}
    candidates: list[tuple[int, str, OptOutRow]] = []
    for line, row in rows:
        raw_phone = row.get("phone", "")
        try:
            phone = phone_parse(raw_phone, region=region)
            at = _parse_when(row["opted_out_at"], now=now) if row.get("opted_out_at") else now
        except ValidationError as exc:
            report.errors.append(RowIssue(line, raw_phone, " ".join(exc.messages)))
            continue
        reason = row.get("reason", "")
        if len(reason) > 1000:
            report.errors.append(RowIssue(line, raw_phone, "The reason is longer than 1,000 characters."))
            continue
        if phone in first_line:
            report.skipped.append(RowIssue(line, raw_phone, f"Duplicate of line {first_line[phone]}."))
            continue
        first_line[phone] = line
        candidates.append((line, raw_phone, OptOutRow(phone=phone, at=at, reason=reason or "Imported opt-out")))
    if report.file_errors:
        return report

    latest = opt_out_latest_for_phones(tenant=tenant, phones=[c[2].phone for c in candidates])
    for line, raw_phone, row in candidates:
        current = latest.get(row.phone)
        if current is not None and current.action == OptOutEvent.Action.OPT_OUT:
            report.skipped.append(
                RowIssue(
                    line,
                    raw_phone,
                    f"Already opted out since {current.created_at:%Y-%m-%d} ({current.get_source_display()}).",
                )
            )
        elif current is not None and current.created_at > row.at:
            report.skipped.append(
                RowIssue(
                    line,
                    raw_phone,
                    f"Opted back in on {current.created_at:%Y-%m-%d} ({current.get_source_display()}), after this "
                    "opt-out: left opted in.",
                )
            )
        else:
            report.rows.append(row)
    return report


@transaction.atomic
def opt_out_import_apply(*, tenant: Tenant, content: bytes, audit: AuditContext, filename: str = "") -> ImportReport:
    """Import an opt-out CSV: everything or, on any invalid row, nothing. Audited."""
    report = opt_out_import_check(tenant=tenant, content=content)
    if not report.ok:
        return report
    events = opt_out_bulk_record(tenant=tenant, rows=report.rows, source=OptOutEvent.Source.IMPORT, actor=audit.actor)
    report.imported = len(events)
    audit_record(
        action="opt_out.import",
        tenant=tenant,
        audit=audit,
        target=filename[:200],
        details={"rows": report.total_rows, "imported": report.imported, "skipped": len(report.skipped)},
    )
    return report


# --- Consent ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentRow:
    phone: str
    purpose: str
    action: str
    method: str
    captured_at: datetime
    source: str
    disclosure_text: str
    disclosure_version: str
    ip_address: str | None
    user_agent: str

    @property
    def key(self) -> tuple:
        return (self.phone, self.purpose, self.action, self.captured_at)


def _choice(raw: str, choices, column: str) -> str:
    """A choice by value or label, any case ("Web form", "web_form")."""
    wanted = raw.strip().lower().replace(" ", "_").replace("-", "_")
    for value, label in choices:
        if wanted in (value, label.lower().replace(" ", "_").replace("-", "_")):
            return value
    allowed = ", ".join(value for value, _ in choices)
    raise ValidationError(f"{column} “{raw[:40]}” is not one of: {allowed}.")


def _consent_row(row: dict[str, str], *, now: datetime, region: str) -> ConsentRow:
    problems: list[str] = []

    def check(fn: Callable[[], object]):
        try:
            return fn()
        except ValidationError as exc:
            problems.extend(exc.messages)
            return None

    for name in _CONSENT_REQUIRED:
        if not row.get(name):
            problems.append(f"{name} is empty.")
    phone = check(lambda: phone_parse(row["phone"], region=region)) if row.get("phone") else None
    purpose = check(lambda: _choice(row["purpose"], Purpose.choices, "purpose")) if row.get("purpose") else None
    action = check(lambda: _choice(row["action"], ConsentEvent.Action.choices, "action")) if row.get("action") else None
    method = check(lambda: _choice(row["method"], ConsentEvent.Method.choices, "method")) if row.get("method") else None
    captured_at = check(lambda: _parse_when(row["captured_at"], now=now)) if row.get("captured_at") else None
    ip = row.get("ip_address", "")
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            problems.append(f"ip_address “{ip[:40]}” is not an IP address.")
    for name, limit in (("source", 255), ("disclosure_version", 40)):
        if len(row.get(name, "")) > limit:
            problems.append(f"{name} is longer than {limit} characters.")
    disclosure = row.get("disclosure_text", "")
    if purpose == Purpose.MARKETING and action == ConsentEvent.Action.GRANTED and not disclosure:
        problems.append("Marketing consent needs disclosure_text: the exact text the person agreed to (TCPA).")
    if problems:
        raise ValidationError(problems)
    return ConsentRow(
        phone=phone,
        purpose=purpose,
        action=action,
        method=method,
        captured_at=captured_at,
        source=row.get("source", ""),
        disclosure_text=disclosure,
        disclosure_version=row.get("disclosure_version", ""),
        ip_address=ip or None,
        user_agent=row.get("user_agent", ""),
    )


def consent_import_check(*, tenant: Tenant, content: bytes) -> ImportReport:
    """Validate a consent CSV (see CONSENT_COLUMNS) without writing anything."""
    report = ImportReport()
    rows = _read(content, report, known=CONSENT_COLUMNS, required=_CONSENT_REQUIRED)
    if rows is None:
        return report
    now = timezone.now()
    first_line: dict[tuple, int] = {}
    candidates: list[tuple[int, str, ConsentRow]] = []
    for line, row in rows:
        try:
            parsed = _consent_row(row, now=now, region=tenant_phone_region(tenant))
        except ValidationError as exc:
            report.errors.append(RowIssue(line, row.get("phone", ""), " ".join(exc.messages)))
            continue
        if parsed.key in first_line:
            report.skipped.append(RowIssue(line, row["phone"], f"Duplicate of line {first_line[parsed.key]}."))
            continue
        first_line[parsed.key] = line
        candidates.append((line, row["phone"], parsed))
    if report.file_errors:
        return report

    existing = _consent_keys(tenant=tenant, phones={c[2].phone for c in candidates})
    for line, raw_phone, parsed in candidates:
        if parsed.key in existing:
            report.skipped.append(
                RowIssue(line, raw_phone, "Already in the consent ledger (same number, purpose, action and time).")
            )
        else:
            report.rows.append(parsed)
    return report


def _consent_keys(*, tenant: Tenant, phones: set[str]) -> set[tuple]:
    keys: set[tuple] = set()
    ordered = sorted(phones)
    for start in range(0, len(ordered), _CHUNK):
        keys.update(
            ConsentEvent.objects.for_tenant(tenant)
            .filter(phone__in=ordered[start : start + _CHUNK])
            .values_list("phone", "purpose", "action", "captured_at")
        )
    return keys


@transaction.atomic
def consent_import_apply(*, tenant: Tenant, content: bytes, audit: AuditContext, filename: str = "") -> ImportReport:
    """Import a consent CSV: everything or, on any invalid row, nothing. Audited."""
    report = consent_import_check(tenant=tenant, content=content)
    if not report.ok:
        return report
    disclosures = _disclosures_for(tenant=tenant, rows=report.rows)
    note = f"Imported from {filename}" if filename else "Imported from CSV"
    events = ConsentEvent.objects.bulk_create(
        [
            ConsentEvent(
                tenant=tenant,
                phone=row.phone,
                purpose=row.purpose,
                action=row.action,
                method=row.method,
                source=row.source,
                disclosure=disclosures.get(disclosure_hash(row.disclosure_text)) if row.disclosure_text else None,
                ip_address=row.ip_address,
                user_agent=row.user_agent,
                captured_by=audit.actor,
                captured_at=row.captured_at,
                note=note[:1000],
            )
            for row in report.rows
        ],
        batch_size=500,
    )
    report.imported = len(events)
    audit_record(
        action="consent.import",
        tenant=tenant,
        audit=audit,
        target=filename[:200],
        details={"rows": report.total_rows, "imported": report.imported, "skipped": len(report.skipped)},
    )
    return report


def _disclosures_for(*, tenant: Tenant, rows: list[ConsentRow]) -> dict[str, ConsentDisclosure]:
    """sha256 -> disclosure for every text in `rows`: one query to find, one to create the rest."""
    wanted: dict[str, ConsentRow] = {}
    for row in rows:
        if row.disclosure_text:
            wanted.setdefault(disclosure_hash(row.disclosure_text), row)
    if not wanted:
        return {}
    found = {d.sha256: d for d in ConsentDisclosure.objects.for_tenant(tenant).filter(sha256__in=list(wanted))}
    missing = [
        ConsentDisclosure(
            tenant=tenant, text=row.disclosure_text, sha256=digest, version=row.disclosure_version, purpose=row.purpose
        )
        for digest, row in wanted.items()
        if digest not in found
    ]
    for disclosure in ConsentDisclosure.objects.bulk_create(missing, batch_size=500):
        found[disclosure.sha256] = disclosure
    return found


# --- The dry run's upload, kept for "Import now" -------------------------------------------------


def _stash_key(*, tenant: Tenant, user, kind: str, token: str) -> str:
    return f"messaging:import:{kind}:{tenant.pk}:{user.pk}:{token}"


def upload_stash(*, tenant: Tenant, user, kind: str, content: bytes, filename: str) -> str:
    """Keep a dry run's upload for "Import now". The file holds phone numbers: it is encrypted
    (Fernet, FIELD_ENCRYPTION_KEY) before it reaches the cache, which may be a folder on disk."""
    token = secrets.token_urlsafe(16)
    sealed = fernet().encrypt(content), fernet().encrypt(filename.encode())
    cache.set(_stash_key(tenant=tenant, user=user, kind=kind, token=token), sealed, STASH_SECONDS)
    return token


def upload_fetch(*, tenant: Tenant, user, kind: str, token: str) -> tuple[bytes, str] | None:
    stashed = cache.get(_stash_key(tenant=tenant, user=user, kind=kind, token=token))
    if stashed is None:
        return None
    sealed_content, sealed_name = stashed
    try:
        # The token's own timestamp also ends it, whatever the cache keeps on disk.
        return fernet().decrypt(sealed_content, ttl=STASH_SECONDS), fernet().decrypt(sealed_name).decode()
    except (InvalidToken, ValueError, TypeError):
        return None


def upload_discard(*, tenant: Tenant, user, kind: str, token: str) -> None:
    cache.delete(_stash_key(tenant=tenant, user=user, kind=kind, token=token))
