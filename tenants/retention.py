"""How long personal data stays: the retention purge, and GDPR erasure of one number.

Retention (daily, `tenants.tasks.retention_purge`): a message's body and media URLs go after
the tenant's `retention_days` (default 400, Twilio's own log retention); its metadata (who,
when, status, error, segments) stays for reporting. Never purged:

* anything of a tenant under `legal_hold`;
* messages marked `is_evidence` (a keyword that changed an opt-out or consent state) and
  messages whose revocation review is still open (an admin must still read them);
* outbound messages still `pending` (their body has not been sent yet);
* the consent and opt-out ledgers (`OptOutEvent`, `ConsentEvent`, `ConsentDisclosure`): TCPA
  claims run 4 years, so that evidence is kept at least 5 years; nothing here deletes it.

Erasure (`number_erase`): everything stored about one number in one tenant is redacted, except
what keeps the person from ever being messaged again: a keyed hash of the number in
`SuppressionHash` plus the (pseudonymised) opt-out. Rows keep existing, with the number replaced
by a marker `erased:<first 16 hex of the hash>` — same number, same marker, so a tenant's
counts and the ledger's shape survive while the number does not.

The hash is HMAC-SHA256 under a random per-tenant key (`SuppressionKey`, stored encrypted under
FIELD_ENCRYPTION_KEY). Not derived from SECRET_KEY or FIELD_ENCRYPTION_KEY on purpose: those are
rotated, an erased number can never be re-hashed under a new key, and a rotation would silently
lift every suppression. A random key survives both rotations (`rotate_encryption_keys`
re-encrypts it) and keeps one person's hashes unlinkable across tenants. Phone numbers are only
~10^10 values: without the key a hash would be trivially reversed.

Append-only ledgers: erasure rewrites `OptOutEvent`, `ConsentEvent`, `RevocationReview` and
`AuditEvent` rows with queryset `.update()`, bypassing their append-only `save()`. That is
deliberate and the one sanctioned exception: GDPR Art. 17 erasure of the person's identifiers.
Only identifying columns change (number → marker, IP/user agent cleared, free text with the
number scrubbed); action, time, source and actor of every event stay, so the ledgers still show
that an opt-out happened and when.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import phonenumbers
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, TextField, Value
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from messaging import statuses
from messaging.models import BulkSend, ConsentEvent, Message, MessageEvent, OptOutEvent, RevocationReview

from .models import AuditEvent, SuppressionHash, SuppressionKey, Tenant
from .phones import phone_normalize
from .services import audit_record
from .twilio import TwilioError, tenant_client, twilio_errors

logger = logging.getLogger("commsportal.retention")

BATCH_SIZE = 1000  # message ids per purge transaction: short locks, steady progress
TWILIO_BATCH_SIZE = 100  # smaller batches when each purged message also costs a Twilio call
SUPPRESSION_IN_LIST_LIMIT = 500  # numbers looked up by IN list; more read the tenant's whole list
ERASED_PREFIX = "erased:"
ERASED_TEXT = "[erased]"
# Payload fields locating the person (Twilio's geographic lookup of From/To): dropped on erasure.
_GEO_FIELD = re.compile(r"^(From|To)(City|State|Zip|Country)$")


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


def _purgeable(tenant: Tenant, cutoff: datetime):
    """Messages of `tenant` older than `cutoff` whose body or media may go (module docstring)."""
    return (
        Message.objects.for_tenant(tenant)
        .filter(created_at__lt=cutoff, body_purged_at__isnull=True, is_evidence=False)
        .filter(~Q(body="") | ~Q(media=[]))
        .exclude(status=statuses.PENDING)
        .exclude(revocation_review__status=RevocationReview.Status.OPEN)
    )


def retention_purge_tenant(
    *,
    tenant: Tenant,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    deadline: float | None = None,
) -> PurgeReport:
    """Purge the bodies and media URLs of `tenant`'s messages past its retention period.

    Runs in batches of `batch_size` ids, one transaction each, so a large backlog never holds
    long locks and an interrupted run resumes where it stopped (purged rows are skipped).
    Past `deadline` (a `time.monotonic()` value) it stops between batches: `incomplete`.
    With `redact_at_twilio`, each batch's bodies are also redacted in Twilio's log afterwards;
    Twilio failures are logged and counted, never fatal. Writes one `retention.purge` audit
    event when anything was purged.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=tenant.retention_days)
    report = PurgeReport(tenant=tenant.slug, cutoff=cutoff.isoformat())
    if tenant.legal_hold:
        report.legal_hold = True
        logger.info("retention.purge tenant=%s skipped: legal hold", tenant.slug)
        return report
    candidates = _purgeable(tenant, cutoff)
    redact = tenant.redact_at_twilio and tenant.status == Tenant.Status.ACTIVE
    if redact:
        batch_size = min(batch_size, TWILIO_BATCH_SIZE)
    while True:
        if deadline is not None and time.monotonic() > deadline:
            report.incomplete = True
            break
        ids = list(candidates.order_by("id").values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        with transaction.atomic():
            # A legal hold placed while a long purge runs stops it at the next batch.
            if Tenant.objects.filter(pk=tenant.pk, legal_hold=True).exists():
                report.legal_hold = True
                break
            batch = candidates.filter(id__in=ids)
            sids = list(batch.exclude(sid=None).values_list("sid", flat=True)) if redact else []
            purged = batch.update(body="", media=[], body_purged_at=now)
        report.purged += purged
        report.batches += 1
        if sids:
            done, failed = _twilio_redact(tenant=tenant, sids=sids)
            report.twilio_redacted += done
            report.twilio_failed += failed
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
            actor=None,
            target=tenant.slug,
            details={k: v for k, v in asdict(report).items() if k not in ("tenant", "legal_hold", "incomplete")}
            | {"retention_days": tenant.retention_days},
        )
    return report


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


def _twilio_redact(*, tenant: Tenant, sids: list[str]) -> tuple[int, int]:
    """Redact bodies in Twilio's message log (POST Messages/{sid} Body=""); (done, failed).

    404 counts as done: Twilio already deleted the message (its own 400-day retention).
    """
    client = tenant_client(tenant)
    done = failed = 0
    for sid in sids:
        try:
            with twilio_errors():
                client.api.v2010.accounts(tenant.account_sid).messages(sid).update(body="")
            done += 1
        except TwilioError as exc:
            if exc.status == 404:
                done += 1
                continue
            failed += 1
            logger.warning(
                "retention.twilio_redact_failed tenant=%s sid=%s code=%s", tenant.slug, sid, exc.code or exc.status
            )
    return done, failed


@transaction.atomic
def tenant_retention_update(
    *, tenant: Tenant, retention_days: int, legal_hold: bool, redact_at_twilio: bool, actor, request=None
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
        actor=actor,
        request=request,
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
        return phone_normalize(phone)
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
    marker: str
    messages: int = 0
    message_events: int = 0
    opt_out_events: int = 0
    consent_events: int = 0
    revocation_reviews: int = 0
    audit_events: int = 0
    bulk_drafts: int = 0
    opt_out_recorded: bool = False
    twilio_redacted: int = 0
    twilio_failed: int = 0
    errors: list[str] = field(default_factory=list)


def _number_pattern(phone: str) -> tuple[re.Pattern[str], str]:
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


def _scrub(value, pattern: re.Pattern[str], marker: str):
    """`value` (text or JSON) with every occurrence of the number replaced by the marker."""
    if isinstance(value, str):
        return pattern.sub(marker, value)
    if isinstance(value, list):
        return [_scrub(v, pattern, marker) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, pattern, marker) for k, v in value.items()}
    return value


def _scrub_text_columns(queryset, columns: list[str], pattern, marker: str, hint: str) -> set[int]:
    """Rewrite the free-text `columns` of rows mentioning the number; returns the changed pks."""
    condition = Q()
    for column in columns:
        condition |= Q(**{f"{column}__contains": hint})
    limits = {c: queryset.model._meta.get_field(c).max_length for c in columns}
    changed = set()
    for row in queryset.filter(condition).values("pk", *columns):
        new = {c: _scrub(row[c], pattern, marker)[: limits[c]] for c in columns}
        if any(new[c] != row[c] for c in columns):
            queryset.filter(pk=row["pk"]).update(**new)
            changed.add(row["pk"])
    return changed


def _scrub_json_column(queryset, column: str, pattern, marker: str, hint: str, transform=None) -> set[int]:
    """Same for one JSON column (pre-filtered on its text form)."""
    changed = set()
    rows = queryset.annotate(_as_text=Cast(column, TextField())).filter(_as_text__contains=hint)
    for row in rows.values("pk", column):
        value = row[column]
        new = transform(value) if transform else value
        new = _scrub(new, pattern, marker)
        if new != value:
            queryset.filter(pk=row["pk"]).update(**{column: new})
            changed.add(row["pk"])
    return changed


def number_erase(
    *, tenant: Tenant, phone: str, actor, reason: str, request=None, at_twilio: bool | None = None
) -> ErasureResult:
    """Erase one number from one tenant (GDPR Art. 17), keeping only its suppression.

    In one transaction: the number is opted out if it is not already (an erasure request is
    also a request not to be contacted); its keyed hash goes into `SuppressionHash`; then every
    row naming it is redacted: its messages (body, media, from/to → marker), their status
    timeline payloads, its opt-out and consent events (number → marker, IP and user agent
    cleared), revocation reviews, the number in free text of audit events and ledger notes,
    and draft bulk sends' recipient lists. The `gdpr.erase` audit event names only the marker.
    With `at_twilio` (default: the tenant's `redact_at_twilio`) the message bodies are then
    redacted in Twilio's log too; failures there are reported, not fatal.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("An erasure needs a reason (e.g. the request's reference).")
    phone = _phone_canonical(phone)
    if not phone:
        raise ValueError("No number to erase.")
    pattern, hint = _number_pattern(phone)
    now = timezone.now()
    with transaction.atomic():
        digest = _digest(_key_for(tenant, create=True), phone)
        marker = ERASED_PREFIX + digest[:16]
        result = ErasureResult(marker=marker)
        SuppressionHash.objects.for_tenant(tenant).get_or_create(tenant=tenant, phone_hash=digest)

        latest = OptOutEvent.objects.for_tenant(tenant).filter(phone=phone).order_by("-created_at", "-id").first()
        if latest is None or latest.action != OptOutEvent.Action.OPT_OUT:
            # Imported here: messaging.services -> messaging.selectors imports this module.
            from messaging.ledgers.services import opt_out_record

            opt_out_record(
                tenant=tenant,
                phone=phone,
                source=OptOutEvent.Source.ADMIN,
                reason="GDPR erasure",
                actor=actor,
                at=now,
            )
            result.opt_out_recorded = True

        # Channel addresses (whatsapp:+1…) name the number too.
        is_from = Q(from_number=phone) | Q(from_number__endswith=":" + phone)
        is_to = Q(to_number=phone) | Q(to_number__endswith=":" + phone)
        messages = Message.objects.for_tenant(tenant).filter(is_from | is_to)
        message_ids = list(messages.values_list("id", flat=True))
        twilio_sids = list(messages.exclude(sid=None).values_list("sid", flat=True))
        erased = Message.objects.for_tenant(tenant).filter(id__in=message_ids)
        result.messages = erased.update(body="", media=[], body_purged_at=Coalesce("body_purged_at", Value(now)))
        erased.filter(is_from).update(from_number=marker)
        erased.filter(is_to).update(to_number=marker)
        _scrub_text_columns(erased, ["failure_reason"], pattern, marker, hint)

        def strip_geo(payload):
            if not isinstance(payload, dict):
                return payload
            return {k: v for k, v in payload.items() if not _GEO_FIELD.match(k)}

        events = MessageEvent.objects.for_tenant(tenant).filter(message_id__in=message_ids)
        for row in events.values("pk", "payload"):
            new = _scrub(strip_geo(row["payload"]), pattern, marker)
            if new != row["payload"]:
                events.filter(pk=row["pk"]).update(payload=new)
                result.message_events += 1

        # The GDPR exception to the append-only ledgers (module docstring).
        result.opt_out_events = OptOutEvent.objects.for_tenant(tenant).filter(phone=phone).update(phone=marker)
        _scrub_text_columns(OptOutEvent.objects.for_tenant(tenant), ["reason", "keyword"], pattern, marker, hint)
        result.consent_events = (
            ConsentEvent.objects.for_tenant(tenant)
            .filter(phone=phone)
            .update(phone=marker, ip_address=None, user_agent=ERASED_TEXT)
        )
        _scrub_text_columns(ConsentEvent.objects.for_tenant(tenant), ["source", "note"], pattern, marker, hint)
        result.revocation_reviews = RevocationReview.objects.for_tenant(tenant).filter(phone=phone).update(phone=marker)
        _scrub_text_columns(RevocationReview.objects.for_tenant(tenant), ["decision_note"], pattern, marker, hint)

        audit = AuditEvent.objects.filter(tenant=tenant)
        result.audit_events = len(
            _scrub_text_columns(audit, ["target", "reason"], pattern, marker, hint)
            | _scrub_json_column(audit, "details", pattern, marker, hint)
        )

        def drop_recipient(upload):
            if not isinstance(upload, dict) or not isinstance(upload.get("recipients"), list):
                return upload
            kept = [r for r in upload["recipients"] if not (isinstance(r, list) and r and r[0] == phone)]
            return {**upload, "recipients": kept}

        result.bulk_drafts = len(
            _scrub_json_column(
                BulkSend.objects.for_tenant(tenant), "upload", pattern, marker, hint, transform=drop_recipient
            )
        )

        audit_record(
            action="gdpr.erase",
            tenant=tenant,
            actor=actor,
            request=request,
            target=marker,
            reason=reason,
            details={
                k: v
                for k, v in asdict(result).items()
                if k not in ("marker", "twilio_redacted", "twilio_failed", "errors")
            },
        )

    if at_twilio is None:
        at_twilio = tenant.redact_at_twilio
    if at_twilio and twilio_sids:
        if tenant.status != Tenant.Status.ACTIVE:
            result.errors.append("Twilio redaction skipped: the tenant is not active (its credentials are refused).")
        else:
            result.twilio_redacted, result.twilio_failed = _twilio_redact(tenant=tenant, sids=twilio_sids)
            if result.twilio_failed:
                result.errors.append(
                    f"{result.twilio_failed} message(s) could not be redacted at Twilio (see the log): retry or "
                    "redact them in the Twilio console."
                )
    logger.info(
        "gdpr.erase tenant=%s marker=%s messages=%s opt_out_events=%s consent_events=%s twilio_redacted=%s "
        "twilio_failed=%s",
        tenant.slug,
        marker,
        result.messages,
        result.opt_out_events,
        result.consent_events,
        result.twilio_redacted,
        result.twilio_failed,
    )
    return result
