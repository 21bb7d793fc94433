"""The public double opt-in: a person asks for a code on a tenant's consent form, enters it,
and the approval is recorded as consent with its evidence.

Consent follows the channel that was proven: a code confirmed by SMS or call (or a fallback SMS)
proves the phone and records a `double_opt_in` consent event for the form's purpose; a code
confirmed by email proves the address only and never records SMS consent. Nothing here reads
the tenant's data about the number before the code is approved, so the page cannot tell anyone
whether the number is known, opted out or consented: every number gets the same answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction

from messaging.delivery.queueing import message_send
from messaging.ledgers.selectors import opt_out_latest
from messaging.ledgers.services import consent_record, opt_in_record
from messaging.models import ConsentEvent, OptOutEvent, Purpose
from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.phones import phone_mask
from tenants.services import audit_record

from ..codes import CodeCheck, CodeSent, code_check, code_send
from ..codes.fallback import FallbackUnavailable, tenant_sms_sender
from ..email.sending import email_send
from ..models import ConsentForm, ConsentFormVersion, EmailMessage, Verification

logger = logging.getLogger("commsportal.verify")

PURPOSE = "consent"


@dataclass(frozen=True)
class PublicForm:
    tenant: Tenant
    form: ConsentForm
    version: ConsentFormVersion


@dataclass(frozen=True)
class Evidence:
    """What the request knew about the person's affirmative act."""

    ip: str | None
    user_agent: str
    form_url: str


def consent_form_public(*, tenant_slug: str, form_slug: str) -> PublicForm | None:
    """A published form of an active tenant, with its current version; None otherwise (the
    page then answers 404, the same for a missing tenant and a missing form)."""
    tenant = Tenant.objects.filter(slug=tenant_slug, status=Tenant.Status.ACTIVE).first()
    if tenant is None:
        return None
    form = (
        ConsentForm.objects.for_tenant(tenant)
        .filter(slug=form_slug, is_published=True, current_version__isnull=False)
        .select_related("current_version__disclosure")
        .first()
    )
    return PublicForm(tenant, form, form.current_version) if form else None


def confirmation_text(*, public: PublicForm) -> str:
    """The opt-in confirmation CTIA asks for: brand, program, frequency, rates, HELP and STOP."""
    version, purpose = public.version, Purpose(public.form.purpose).label.lower()
    return (
        f"{version.brand}: You're subscribed to {purpose} messages. {version.frequency.rstrip('.')}. "
        "Msg & data rates may apply. Reply HELP for help, STOP to cancel."
    )


def consent_code_request(
    *,
    public: PublicForm,
    phone: str,
    channel: str,
    email: str = "",
    client_ip: str | None = None,
    verification_id: int | None = None,
) -> CodeSent:
    """Send a code for the form: to the phone (sms, call) or to the email address given on
    the form (email). Raises `verify.codes.CodeError`."""
    to = email if channel == "email" else phone
    fields = {"form": public.form, "form_version": public.version, "phone": phone}
    return code_send(
        tenant=public.tenant,
        to=to,
        purpose=PURPOSE,
        channel=channel,
        client_ip=client_ip,
        verification_id=verification_id,
        fields=fields,
    )


def consent_code_confirm(
    *, public: PublicForm, verification_id: int, code: str, evidence: Evidence
) -> tuple[CodeCheck, ConsentEvent | None]:
    """Check the code; on approval of a phone channel record the double opt-in (once) and
    queue the confirmation SMS. An approved email code records nothing about the phone."""
    result = code_check(tenant=public.tenant, verification_id=verification_id, code=code)
    verification = result.verification
    if not result.approved or verification.form_id != public.form.pk or "@" in verification.to:
        return result, None
    return result, double_opt_in_record(public=public, verification=verification, evidence=evidence)


@transaction.atomic
def double_opt_in_record(*, public: PublicForm, verification: Verification, evidence: Evidence) -> ConsentEvent:
    """Record consent for an approved phone verification, exactly once.

    A number whose latest opt-out event is an opt-out gets an opt-in event first (source
    double_opt_in): this double opt-in is the person's express re-consent. Then the consent
    event with the evidence, then the confirmation SMS (queued through the compliance gate).
    """
    tenant = public.tenant
    locked = Verification.objects.for_tenant(tenant).select_for_update().get(pk=verification.pk)
    if locked.consent_event_id:
        return ConsentEvent.objects.for_tenant(tenant).get(pk=locked.consent_event_id)
    version = locked.form_version or public.version
    reference = locked.sid or f"portal fallback code #{locked.pk}"
    latest = opt_out_latest(tenant=tenant, phone=locked.phone)
    re_consent = latest is not None and latest.action == OptOutEvent.Action.OPT_OUT
    if re_consent:
        opt_in_record(
            tenant=tenant,
            phone=locked.phone,
            source=OptOutEvent.Source.DOUBLE_OPT_IN,
            reason=f"Express re-consent on consent form {public.form.slug} {version.label} ({reference})",
        )
    event = consent_record(
        tenant=tenant,
        phone=locked.phone,
        purpose=public.form.purpose,
        action=ConsentEvent.Action.GRANTED,
        method=ConsentEvent.Method.DOUBLE_OPT_IN,
        source=evidence.form_url,
        disclosure_text=version.disclosure.text,
        disclosure_version=version.disclosure.version,
        ip_address=evidence.ip,
        user_agent=evidence.user_agent[:1000],
        note=(
            f"Double opt-in on form {public.form.slug} {version.label}, brand {version.brand}; "
            f"Verification {reference} by {locked.channel}{' (fallback code)' if locked.fallback else ''}"
        ),
    )
    Verification.objects.for_tenant(tenant).filter(pk=locked.pk).update(consent_event=event)
    audit_record(
        action="consent.double_opt_in",
        tenant=tenant,
        audit=AuditContext(actor=None, ip=evidence.ip),
        target=phone_mask(locked.phone),
        details={
            "consent_event": event.pk,
            "verification": locked.pk,
            "form": public.form.pk,
            "re_consent": re_consent,
        },
    )
    _confirmation_send(public=public, phone=locked.phone)
    return event


def _confirmation_send(*, public: PublicForm, phone: str) -> None:
    """Queue the opt-in confirmation; without any sender the consent still stands (logged)."""
    try:
        message_send(
            tenant=public.tenant,
            to=phone,
            body=confirmation_text(public=public),
            purpose=Purpose.TRANSACTIONAL,
            sender=tenant_sms_sender(public.tenant),
        )
    except (FallbackUnavailable, ValueError) as exc:
        logger.warning("consent.confirmation_unsent", extra={"tenant": public.tenant.slug, "reason": str(exc)})


def consent_receipt_send(*, public: PublicForm, event_id: int, email: str) -> EmailMessage:
    """Email the person a receipt of their consent: only to an address they proved with a code
    in the same session (the caller's rule), through verify.email (suppression list checked)."""
    event = ConsentEvent.objects.for_tenant(public.tenant).select_related("disclosure").get(pk=event_id)
    version = public.version
    text = (
        f"{version.brand}: this confirms your consent to {Purpose(event.purpose).label.lower()} text messages "
        f"at {phone_mask(event.phone)}.\n\n"
        f"When: {event.captured_at:%Y-%m-%d %H:%M:%S} UTC\n"
        f"Where: {event.source}\n"
        f"Confirmed with a one-time code (double opt-in). What you agreed to ({event.disclosure.version}):\n\n"
        f"{event.disclosure.text}\n\n"
        f"{version.frequency.rstrip('.')}. Msg & data rates may apply. "
        "Reply STOP to any message to cancel, HELP for help."
    )
    return email_send(
        tenant=public.tenant,
        to=email,
        subject=f"{version.brand}: your text message consent",
        text=text,
        category=EmailMessage.Category.CONSENT_RECEIPT,
    )
