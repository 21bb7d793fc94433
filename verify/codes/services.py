"""`code_send` and `code_check`: the one way the portal sends and checks one-time codes (see the
package docstring for the contract)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tenants.locks import transaction_locks
from tenants.models import Tenant
from tenants.twilio import TwilioError

from ..models import StaffVerification, Verification, VerificationStatus
from . import breaker, fallback, twilio_verify
from .breaker import Scope
from .limits import MAX_CHECKS, send_limit_check, send_lock_names, sends_of

CHANNELS = ("sms", "call", "email")
FINISHED = (VerificationStatus.APPROVED, VerificationStatus.MAX_ATTEMPTS_REACHED, VerificationStatus.EXPIRED)


class CodeError(Exception):
    """A code could not be sent or checked. `kind`: ``limited`` (our abuse limits; see
    `reason`, `retry_after`), ``refused`` (Verify answered 4xx: `twilio_code`), ``unavailable``
    (Verify down and no fallback possible for this channel), ``invalid`` (bad arguments)."""

    def __init__(self, kind: str, message: str, *, reason: str = "", retry_after: int = 0, twilio_code=None):
        super().__init__(message)
        self.kind, self.message, self.reason = kind, message, reason
        self.retry_after, self.twilio_code = retry_after, twilio_code


@dataclass(frozen=True)
class CodeSent:
    verification: Verification | StaffVerification
    fallback: bool

    @property
    def id(self) -> int:
        return self.verification.pk


@dataclass(frozen=True)
class CodeCheck:
    verification: Verification | StaffVerification
    approved: bool
    status: str
    attempts_left: int
    unavailable: bool = False  # Verify could not be asked (down): nothing was decided


def _verifications(scope: Scope):
    if scope.tenant is None:
        return StaffVerification.objects.all()
    return Verification.objects.for_tenant(scope.tenant)


def _validity() -> timedelta:
    return timedelta(seconds=settings.MESSAGING_OTP_VALIDITY_SECONDS)


def code_send(
    *,
    tenant: Tenant | None,
    to: str,
    purpose: str,
    channel: str = "sms",
    client_ip: str | None = None,
    verification_id: int | None = None,
    fields: dict | None = None,
    now: datetime | None = None,
) -> CodeSent:
    """Send a one-time code to `to` (E.164, or an email address for channel email), through
    Verify while its breaker is closed, else the portal's own fallback code by SMS.

    `verification_id` resends within a pending verification (another channel allowed).
    `fields` are extra columns of a new tenant `Verification` (form, form_version, phone).
    Raises `CodeError`.
    """
    if channel not in CHANNELS:
        raise CodeError("invalid", f"Unknown channel {channel!r}.")
    scope, now = Scope(tenant), now or timezone.now()
    # The limits' check, the send and its log are one step per number and per client address:
    # parallel requests for one number would otherwise all pass the check before any send is
    # logged (and each cost an SMS). What a refused send records is kept: the error is raised
    # after the transaction commits.
    with transaction.atomic():
        transaction_locks(*send_lock_names(scope=scope, to=to, client_ip=client_ip))
        try:
            return _code_send(scope, to, purpose, channel, client_ip, verification_id, fields, now)
        except CodeError as exc:
            error = exc
    raise error


def _code_send(scope, to, purpose, channel, client_ip, verification_id, fields, now) -> CodeSent:
    verdict = send_limit_check(scope=scope, to=to, client_ip=client_ip, now=now)
    if not verdict.allowed:
        raise CodeError("limited", "Too many codes.", reason=verdict.reason, retry_after=verdict.retry_after)
    row = _resendable(scope, verification_id, to, now)
    route = breaker.breaker_route(scope=scope, channel=channel, now=now)
    if route != breaker.FALLBACK:
        try:
            sid, _status = twilio_verify.verify_start(scope=scope, to=to, channel=channel)
        except TwilioError as exc:
            if not breaker.breaker_trips(exc):
                breaker.breaker_record_success(scope=scope, channel=channel)  # Verify answered: it is up
                _failed_row(scope, row, to, channel, purpose, client_ip, fields, now)
                raise CodeError("refused", exc.explanation, twilio_code=exc.code) from exc
            breaker.breaker_record_failure(scope=scope, channel=channel, error=exc, now=now)
        else:
            breaker.breaker_record_success(scope=scope, channel=channel)
            row = _save_row(scope, row, to, channel, purpose, client_ip, fields, now, sid=sid)
            return CodeSent(verification=row, fallback=False)
    if channel == "email":
        raise CodeError("unavailable", "Codes by email are unavailable right now.")
    return _fallback_send(scope, row, to, purpose, client_ip, fields, now)


def _resendable(scope: Scope, verification_id, to: str, now: datetime):
    if verification_id is None:
        return None
    row = _verifications(scope).filter(pk=verification_id, to=to, status=VerificationStatus.PENDING).first()
    return row if row is not None and row.expires_at > now else None


@transaction.atomic
def _save_row(scope, row, to, channel, purpose, client_ip, fields, now, *, sid="", fallback_code=""):
    """Create or update the verification and log the send, in one transaction."""
    if row is None:
        extra = dict(fields or {}) if scope.tenant is not None else {}
        if scope.tenant is not None:
            extra["tenant"] = scope.tenant
        row = _verifications(scope).model(
            to=to, purpose=purpose, client_ip=client_ip, expires_at=now + _validity(), **extra
        )
    row.channel, row.fallback = channel, bool(fallback_code)
    if sid or fallback_code:
        row.sid = sid  # a fallback code replaces whatever Verify had sent
    row.sends += 1
    row.code_hmac = ""
    row.save()
    if fallback_code:  # keyed by the row's id, so known only once it is saved
        row.code_hmac = fallback.code_hmac(verification_key=str(row.pk), code=fallback_code)
        row.save(update_fields=["code_hmac"])
    log = {"to": to, "client_ip": client_ip, "channel": channel, "fallback": bool(fallback_code), "sent_at": now}
    if scope.tenant is not None:
        log["tenant"] = scope.tenant
    sends_of(scope).model.objects.create(verification=row, **log)
    return row


def _failed_row(scope, row, to, channel, purpose, client_ip, fields, now) -> None:
    """Verify refused a new verification: log it as failed (a resend's row stays as it was)."""
    if row is not None:
        return
    extra = dict(fields or {}) if scope.tenant is not None else {}
    if scope.tenant is not None:
        extra["tenant"] = scope.tenant
    _verifications(scope).model.objects.create(
        to=to,
        channel=channel,
        purpose=purpose,
        client_ip=client_ip,
        status=VerificationStatus.FAILED,
        expires_at=now,
        **extra,
    )


def _fallback_send(scope, row, to, purpose, client_ip, fields, now) -> CodeSent:
    """Verify is down: generate a code, keep only its HMAC, send it by SMS."""
    if "@" in to:
        raise CodeError("unavailable", "Codes by email are unavailable right now.")
    code = fallback.code_generate()
    try:
        with transaction.atomic():
            row = _save_row(scope, row, to, "sms", purpose, client_ip, fields, now, fallback_code=code)
            if scope.tenant is not None:
                message = fallback.fallback_send_tenant(tenant=scope.tenant, to=to, code=code)
                type(row).objects.for_tenant(scope.tenant).filter(pk=row.pk).update(message=message)
                row.message_id = message.pk
    except fallback.FallbackUnavailable as exc:
        raise CodeError("unavailable", str(exc)) from exc
    if scope.tenant is None:
        try:
            fallback.fallback_send_platform(to=to, code=code)
        except (fallback.FallbackUnavailable, TwilioError) as exc:
            _verifications(scope).filter(pk=row.pk).update(status=VerificationStatus.FAILED)
            raise CodeError("unavailable", "The code could not be sent. Try again shortly.") from exc
    return CodeSent(verification=row, fallback=True)


def code_check(*, tenant: Tenant | None, verification_id: int, code: str, now: datetime | None = None) -> CodeCheck:
    """Check `code` for a verification of `tenant` (None: the platform's). At most MAX_CHECKS
    checks, counted before Verify is asked; an expired or finished verification answers its
    status without asking anyone."""
    scope, now = Scope(tenant), now or timezone.now()
    qs = _verifications(scope)
    row = qs.get(pk=verification_id)
    if row.status == VerificationStatus.PENDING and row.expires_at <= now:
        row = _finish(scope, row, VerificationStatus.EXPIRED)
    if row.status != VerificationStatus.PENDING:
        return CodeCheck(row, row.status == VerificationStatus.APPROVED, row.status, 0)
    claimed = qs.filter(pk=row.pk, status=VerificationStatus.PENDING, attempts__lt=MAX_CHECKS).update(
        attempts=F("attempts") + 1
    )
    if not claimed:
        row = _finish(scope, row, VerificationStatus.MAX_ATTEMPTS_REACHED)
        return CodeCheck(row, False, row.status, 0)
    row.refresh_from_db()
    code = (code or "").strip()
    if row.fallback:
        approved = fallback.code_matches(verification_key=str(row.pk), code=code, stored=row.code_hmac)
        status = VerificationStatus.APPROVED if approved else VerificationStatus.PENDING
    else:
        try:
            status = twilio_verify.verify_check(scope=scope, verification_sid=row.sid, code=code)
        except TwilioError as exc:
            return _check_failed(scope, row, exc)
        breaker.breaker_record_success(scope=scope, channel=row.channel)
    if status == VerificationStatus.PENDING and row.attempts >= MAX_CHECKS:
        status = VerificationStatus.MAX_ATTEMPTS_REACHED
    if status != VerificationStatus.PENDING:
        row = _finish(scope, row, status)
    return CodeCheck(row, row.status == VerificationStatus.APPROVED, row.status, MAX_CHECKS - row.attempts)


def _check_failed(scope: Scope, row, exc: TwilioError) -> CodeCheck:
    if breaker.breaker_trips(exc):
        breaker.breaker_record_failure(scope=scope, channel=row.channel, error=exc)
        _verifications(scope).filter(pk=row.pk).update(attempts=F("attempts") - 1)  # nothing was decided
        row.refresh_from_db()
        return CodeCheck(row, False, row.status, MAX_CHECKS - row.attempts, unavailable=True)
    breaker.breaker_record_success(scope=scope, channel=row.channel)  # a 4xx is an answer: Verify is up
    status = {60202: VerificationStatus.MAX_ATTEMPTS_REACHED, 20404: VerificationStatus.EXPIRED}.get(exc.code)
    if status is None:
        return CodeCheck(row, False, row.status, MAX_CHECKS - row.attempts)
    row = _finish(scope, row, status)
    return CodeCheck(row, False, row.status, 0)


def _finish(scope: Scope, row, status: str):
    """A verification is over: record its final status and drop a fallback code's SMS body."""
    _verifications(scope).filter(pk=row.pk, status=VerificationStatus.PENDING).update(
        status=status, updated_at=timezone.now(), code_hmac=""
    )
    row.refresh_from_db()
    if scope.tenant is not None:
        fallback.fallback_message_redact(tenant=scope.tenant, message_id=row.message_id)
    return row
