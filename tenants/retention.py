"""How long personal data stays: the retention purge, and GDPR erasure of one number.

Both span every app, so tenants keeps the rules and each app registers its own tables in
`tenants.registry` (messaging's: `messaging/retention.py`, `messaging/erasure.py`).

Retention (daily, `tenants.tasks.retention_purge`): each registered purger's data goes after
the tenant's `retention_days` (default 400, Twilio's own log retention), in short batches, with
`redact_at_twilio` also at Twilio. Nothing is purged for a tenant under `legal_hold` (a hold
placed during a run stops it at the next batch), and a run past its deadline stops between
batches and resumes on the next one. What each app keeps (evidence, open reviews, the consent
ledgers) is its purger's rule.

Erasure (`number_erase`): everything stored about one number in one tenant is redacted, except
what keeps the person from ever being messaged again: a keyed hash of the number in
`SuppressionHash` plus whatever the apps keep for that purpose (messaging: the pseudonymised
opt-out). Rows keep existing, with the number replaced by a marker `erased:<first 16 hex of the
hash>` — same number, same marker, so a tenant's counts and the ledger's shape survive while
the number does not. tenants scrubs its own audit log; each registered eraser its own tables.

The hash is HMAC-SHA256 under a random per-tenant key (`SuppressionKey`, stored encrypted under
FIELD_ENCRYPTION_KEY). Not derived from SECRET_KEY or FIELD_ENCRYPTION_KEY on purpose: those are
rotated, an erased number can never be re-hashed under a new key, and a rotation would silently
lift every suppression. A random key survives both rotations (`rotate_encryption_keys`
re-encrypts it) and keeps one person's hashes unlinkable across tenants. Phone numbers are only
~10^10 values: without the key a hash would be trivially reversed.

Append-only ledgers: erasure rewrites `AuditEvent` rows (and the apps' ledgers) with queryset
`.update()`, bypassing their append-only `save()`. That is deliberate and the one sanctioned
exception: GDPR Art. 17 erasure of the person's identifiers. Only identifying columns change
(number → marker, IP/user agent cleared, free text with the number scrubbed); action, time,
source and actor of every event stay, so the ledgers still show that an event happened and when.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from .audit import SYSTEM, AuditContext
from .models import AuditEvent, SuppressionHash, SuppressionKey, Tenant
from .phones import DEFAULT_REGION, phone_parse
from .registry import NumberErasure, RetentionPurger, number_erasers, retention_purgers
from .services import audit_record

logger = logging.getLogger("commsportal.retention")

BATCH_SIZE = 1000  # ids per purge transaction: short locks, steady progress
SUPPRESSION_IN_LIST_LIMIT = 500  # numbers looked up by IN list; more read the tenant's whole list
ERASED_PREFIX = "erased:"
ERASED_TEXT = "[erased]"


# --- Retention -----------------------------------------------------------------------------------


@dataclass
class PurgeReport:
    tenant: str
    purged: int = 0
    batches: int = 0
    legal_hold: bool = False
    twilio_redacted: int = 0
    twilio_failed: int = 0
    cutoff: str = ""
    incomplete: bool = False  # stopped at the deadline; the next run resumes


def retention_purge_tenant(
    *,
    tenant: Tenant,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    deadline: float | None = None,
) -> PurgeReport:
    """Purge `tenant`'s data past its retention period, with every registered purger.

    Runs in batches of `batch_size` ids, one transaction each, so a large backlog never holds
    long locks and an interrupted run resumes where it stopped (purged rows are skipped).
    Past `deadline` (a `time.monotonic()` value) it stops between batches: `incomplete`.
    With `redact_at_twilio`, each batch is also redacted at Twilio afterwards (in smaller
    batches); Twilio failures are logged and counted, never fatal. Writes one
    `retention.purge` audit event when anything was purged.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=tenant.retention_days)
    report = PurgeReport(tenant=tenant.slug, cutoff=cutoff.isoformat())
    if tenant.legal_hold:
        report.legal_hold = True
        logger.info("retention.purge tenant=%s skipped: legal hold", tenant.slug)
        return report
    redact = tenant.redact_at_twilio and tenant.status == Tenant.Status.ACTIVE
    for purger in retention_purgers:
        _purger_run(
            purger,
            tenant=tenant,
            cutoff=cutoff,
            now=now,
            batch_size=batch_size,
            deadline=deadline,
            redact=redact,
            report=report,
        )
        if report.incomplete or report.legal_hold:
            break
    logger.info(
        "retention.purge tenant=%s purged=%s batches=%s twilio_redacted=%s twilio_failed=%s cutoff=%s incomplete=%s",
        tenant.slug,
        report.purged,
        report.batches,
        report.twilio_redacted,
        report.twilio_failed,
        report.cutoff,
        report.incomplete,
    )
    if report.purged:
        audit_record(
            action="retention.purge",
            tenant=tenant,
            audit=SYSTEM,
            target=tenant.slug,
            details={k: v for k, v in asdict(report).items() if k not in ("tenant", "legal_hold", "incomplete")}
            | {"retention_days": tenant.retention_days},
        )
    return report


def _purger_run(
    purger: RetentionPurger,
    *,
    tenant: Tenant,
    cutoff: datetime,
    now: datetime,
    batch_size: int,
    deadline: float | None,
    redact: bool,
    report: PurgeReport,
) -> None:
    """One purger's batches for one tenant, adding to `report` (see `retention_purge_tenant`)."""
    remote = redact and purger.remote_redact is not None
    if remote:
        batch_size = min(batch_size, purger.remote_batch_size)
    while True:
        if deadline is not None and time.monotonic() > deadline:
            report.incomplete = True
            return
        ids = purger.batch_ids(tenant=tenant, cutoff=cutoff, limit=batch_size)
        if not ids:
            return
        with transaction.atomic():
            # A legal hold placed while a long purge runs stops it at the next batch.
            if Tenant.objects.filter(pk=tenant.pk, legal_hold=True).exists():
                report.legal_hold = True
                return
            purged, remote_ids = purger.batch_purge(tenant=tenant, cutoff=cutoff, ids=ids, now=now, remote=remote)
        report.purged += purged
        report.batches += 1
        if remote and remote_ids:
            done, failed = purger.remote_redact(tenant=tenant, ids=remote_ids)
            report.twilio_redacted += done
            report.twilio_failed += failed


def retention_purge_all(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, budget_seconds: float | None = None
) -> dict:
    """The daily job: purge every tenant (a platform job, so it crosses tenants on purpose).

    One tenant's failure is logged and does not stop the others. With `budget_seconds` it
    stops once the budget is spent and says so (`incomplete`): the caller runs it again.
    """
    now = now or timezone.now()
    deadline = time.monotonic() + budget_seconds if budget_seconds is not None else None
    totals = {
        "tenants": 0,
        "purged": 0,
        "held": 0,
        "failed": 0,
        "twilio_redacted": 0,
        "twilio_failed": 0,
        "incomplete": False,
    }
    for tenant in Tenant.objects.order_by("pk"):
        if deadline is not None and time.monotonic() > deadline:
            totals["incomplete"] = True
            break
        totals["tenants"] += 1
        try:
            report = retention_purge_tenant(tenant=tenant, now=now, batch_size=batch_size, deadline=deadline)
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # noqa: BLE001 - isolate tenants; the traceback goes to the log
            logger.exception("retention.purge_failed tenant=%s", tenant.slug)
            totals["failed"] += 1
            continue
        totals["purged"] += report.purged
        totals["held"] += int(report.legal_hold)
        totals["twilio_redacted"] += report.twilio_redacted
        totals["twilio_failed"] += report.twilio_failed
        totals["incomplete"] = totals["incomplete"] or report.incomplete
    logger.info("retention.purge_all %s", " ".join(f"{k}={v}" for k, v in totals.items()))
    return totals


@transaction.atomic
def tenant_retention_update(
    *, tenant: Tenant, retention_days: int, legal_hold: bool, redact_at_twilio: bool, audit: AuditContext
) -> list[str]:
    """Change a tenant's retention settings; returns the names of the fields that changed."""
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    changes = {"retention_days": retention_days, "legal_hold": legal_hold, "redact_at_twilio": redact_at_twilio}
    changed = [name for name, value in changes.items() if getattr(locked, name) != value]
    if not changed:
        return []
    before = {name: getattr(locked, name) for name in changed}
    for name in changed:
        setattr(locked, name, changes[name])
    locked.full_clean(exclude=[f.name for f in Tenant._meta.fields if f.name not in changed])
    locked.save(update_fields=[*changed, "updated_at"])
    audit_record(
        action="retention.settings_update",
        tenant=locked,
        audit=audit,
        target=locked.slug,
        details={"before": before, "after": {name: changes[name] for name in changed}},
    )
    for name in changed:
        setattr(tenant, name, changes[name])
    return changed


# --- Suppression hashes --------------------------------------------------------------------------


_E164 = re.compile(r"\+[1-9]\d{6,14}")


def _phone_canonical(phone: str) -> str:
    """E.164 for anything phonenumbers accepts; short codes and sender IDs as typed."""
    phone = (phone or "").strip()
    if _E164.fullmatch(phone):  # already canonical either way; the gate checks thousands at once
        return phone
    try:
        return phone_parse(phone, region=DEFAULT_REGION)
    except ValidationError:
        return (phone or "").strip()


def _key_for(tenant: Tenant, *, create: bool) -> bytes | None:
    row = SuppressionKey.objects.filter(tenant=tenant).first()
    if row is None and create:
        try:
            with transaction.atomic():
                row = SuppressionKey.objects.create(tenant=tenant, key=secrets.token_hex(32))
        except IntegrityError:  # a concurrent erasure created it first
            row = SuppressionKey.objects.get(tenant=tenant)
    return row.key.reveal().encode() if row is not None else None


def _digest(key: bytes, phone: str) -> str:
    return hmac.new(key, _phone_canonical(phone).encode(), hashlib.sha256).hexdigest()


def suppressed_phones(*, tenant: Tenant, phones) -> set[str]:
    """Which of `phones` were erased in `tenant` (and so may never be messaged again)."""
    phones = {p for p in phones if p}
    if not phones:
        return set()
    key = _key_for(tenant, create=False)
    if key is None:  # no number of this tenant was ever erased
        return set()
    by_hash: dict[str, set[str]] = {}
    for phone in phones:
        by_hash.setdefault(_digest(key, phone), set()).add(phone)
    stored = SuppressionHash.objects.for_tenant(tenant)
    if len(by_hash) <= SUPPRESSION_IN_LIST_LIMIT:
        stored = stored.filter(phone_hash__in=list(by_hash))
    # Past the limit (bulk sends) one read of the tenant's whole list beats a huge IN list:
    # erasures are rare, so it is short. Either way a constant number of queries.
    found: set[str] = set()
    for digest in stored.values_list("phone_hash", flat=True).iterator():
        found |= by_hash.get(digest, set())
    return found


def phone_is_suppressed(*, tenant: Tenant, phone: str) -> bool:
    return bool(suppressed_phones(tenant=tenant, phones=[phone]))


# --- GDPR erasure ----------------------------------------------------------------------------------


@dataclass
class ErasureResult:
    """What an erasure changed: `counts` per kind of record, from each eraser and the audit log."""

    marker: str
    counts: dict[str, int | bool] = field(default_factory=dict)
    summaries: list[str] = field(default_factory=list)
    twilio_redacted: int = 0
    twilio_failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """What was redacted, in words, for the operator's confirmation."""
        return "; ".join(self.summaries) or "no records"


def number_pattern(phone: str) -> tuple[re.Pattern[str], str]:
    """A regex finding the number in free text, written as E.164, national or with spaces,
    dashes, dots or brackets; and a short substring to pre-filter rows in the database."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return re.compile(re.escape(phone)), phone[-4:] or phone
    national = phonenumbers.national_significant_number(parsed)
    sep = r"[\s().\-/]{0,3}"
    digits = sep.join(national)
    pattern = rf"(?<!\d)(?:(?:\+|00)?{parsed.country_code}{sep}|0{sep})?{digits}(?!\d)"
    return re.compile(pattern), national[-4:]


def text_scrub(value, pattern: re.Pattern[str], marker: str):
    """`value` (text or JSON) with every occurrence of the number replaced by the marker."""
    if isinstance(value, str):
        return pattern.sub(marker, value)
    if isinstance(value, list):
        return [text_scrub(v, pattern, marker) for v in value]
    if isinstance(value, dict):
        return {k: text_scrub(v, pattern, marker) for k, v in value.items()}
    return value


def text_columns_scrub(
    queryset: QuerySet, columns: list[str], pattern: re.Pattern[str], marker: str, hint: str
) -> set[int]:
    """Rewrite the free-text `columns` of rows mentioning the number; returns the changed pks.

    For erasers: any table's free text, pre-filtered on `hint` so only candidate rows are read.
    """
    condition = Q()
    for column in columns:
        condition |= Q(**{f"{column}__contains": hint})
    limits = {c: queryset.model._meta.get_field(c).max_length for c in columns}
    changed = set()
    for row in queryset.filter(condition).values("pk", *columns):
        new = {c: text_scrub(row[c], pattern, marker)[: limits[c]] for c in columns}
        if any(new[c] != row[c] for c in columns):
            queryset.filter(pk=row["pk"]).update(**new)
            changed.add(row["pk"])
    return changed


def json_column_scrub(
    queryset: QuerySet,
    column: str,
    pattern: re.Pattern[str],
    marker: str,
    hint: str,
    transform: Callable[[Any], Any] | None = None,
) -> set[int]:
    """Same for one JSON column (pre-filtered on its text form)."""
    changed = set()
    rows = queryset.annotate(_as_text=Cast(column, TextField())).filter(_as_text__contains=hint)
    for row in rows.values("pk", column):
        value = row[column]
        new = transform(value) if transform else value
        new = text_scrub(new, pattern, marker)
        if new != value:
            queryset.filter(pk=row["pk"]).update(**{column: new})
            changed.add(row["pk"])
    return changed


def number_erase(
    *, tenant: Tenant, phone: str, reason: str, audit: AuditContext, at_twilio: bool | None = None
) -> ErasureResult:
    """Erase one number from one tenant (GDPR Art. 17), keeping only its suppression.

    In one transaction: the number's keyed hash goes into `SuppressionHash`; every registered
    eraser redacts it in its app's tables (messaging also opts the number out first: an erasure
    request is also a request not to be contacted); then the number is scrubbed from the free
    text of the tenant's audit events, and the `gdpr.erase` audit event names only the marker.
    With `at_twilio` (default: the tenant's `redact_at_twilio`) what the erasers listed is then
    redacted at Twilio too; failures there are reported, not fatal.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("An erasure needs a reason (e.g. the request's reference).")
    phone = _phone_canonical(phone)
    if not phone:
        raise ValueError("No number to erase.")
    pattern, hint = number_pattern(phone)
    with transaction.atomic():
        digest = _digest(_key_for(tenant, create=True), phone)
        SuppressionHash.objects.for_tenant(tenant).get_or_create(tenant=tenant, phone_hash=digest)
        erasure = NumberErasure(
            tenant=tenant,
            phone=phone,
            marker=ERASED_PREFIX + digest[:16],
            pattern=pattern,
            hint=hint,
            now=timezone.now(),
            actor=audit.actor,
        )
        erasers = list(number_erasers)
        for eraser in erasers:
            eraser.erase(erasure)
        # Last: the erasers' own services (an opt-out, say) may have just audited the number.
        events = AuditEvent.objects.filter(tenant=tenant)
        erasure.counts["audit_events"] = len(
            text_columns_scrub(events, ["target", "reason"], pattern, erasure.marker, hint)
            | json_column_scrub(events, "details", pattern, erasure.marker, hint)
        )
        audit_record(
            action="gdpr.erase",
            tenant=tenant,
            audit=audit,
            target=erasure.marker,
            reason=reason,
            details=dict(erasure.counts),
        )
    result = ErasureResult(
        marker=erasure.marker,
        counts=dict(erasure.counts),
        summaries=[eraser.describe(erasure.counts) for eraser in erasers if eraser.describe is not None],
    )
    _erasure_remote_redact(erasure, erasers=erasers, result=result, at_twilio=at_twilio)
    logger.info(
        "gdpr.erase tenant=%s marker=%s %s twilio_redacted=%s twilio_failed=%s",
        tenant.slug,
        result.marker,
        " ".join(f"{k}={v}" for k, v in result.counts.items()),
        result.twilio_redacted,
        result.twilio_failed,
    )
    return result


def _erasure_remote_redact(erasure: NumberErasure, *, erasers, result: ErasureResult, at_twilio: bool | None) -> None:
    """After commit: redact at Twilio what the erasers listed (never fatal: reported)."""
    tenant = erasure.tenant
    if at_twilio is None:
        at_twilio = tenant.redact_at_twilio
    pending = [(e, erasure.remote_ids.get(e.key)) for e in erasers if e.remote_redact is not None]
    pending = [(e, ids) for e, ids in pending if ids]
    if not (at_twilio and pending):
        return
    if tenant.status != Tenant.Status.ACTIVE:
        result.errors.append("Twilio redaction skipped: the tenant is not active (its credentials are refused).")
        return
    for eraser, ids in pending:
        done, failed = eraser.remote_redact(tenant=tenant, ids=ids)
        result.twilio_redacted += done
        result.twilio_failed += failed
    if result.twilio_failed:
        result.errors.append(
            f"{result.twilio_failed} message(s) could not be redacted at Twilio (see the log): retry or "
            "redact them in the Twilio console."
        )
