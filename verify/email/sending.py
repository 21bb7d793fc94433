"""Sending email through SendGrid: the one module that talks to SendGrid's v3 mail send.

`email_send` records an `EmailMessage` (queued, or suppressed when the tenant's suppression
list forbids the address) and enqueues `verify.tasks.email_deliver_task` after commit; the task
calls `email_deliver`, which sends it with the sendgrid SDK: a dynamic template when the email
names one, plain text/HTML otherwise. Every send carries `custom_args` {tenant, email_id}: one
platform SendGrid account sends for every tenant, and that is how the Event Webhook's events
find their tenant and email.

What SendGrid's answers mean here:
- 2xx: accepted (`sent`); its `X-Message-Id` is kept; an open configuration problem clears.
- 401/403: the platform's API key is wrong or lacks the mail.send scope. Retrying cannot help,
  so the email fails at once and an `EmailProviderProblem` opens, shown on the support overview
  and every email log until a send succeeds again: a visible error, never a retry loop.
- 429, 5xx, a refused connection or a timeout: transient; the email goes back to `queued` and
  the task retries with backoff (`EmailRetry`), then fails once its retries are spent.
- other 4xx (a payload SendGrid refuses): fails at once with SendGrid's message.

A worker that dies while SendGrid holds the request leaves the email `sending`: it is not sent
again blindly (a duplicate receipt is worse than a visible stuck row).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from http.client import HTTPException
from typing import Any
from urllib.error import URLError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Asm, Category, CustomArg, From, GroupId, Mail, To

from messaging.delivery.enqueue import task_delay
from tenants.audit import AuditContext
from tenants.emails import email_mask
from tenants.models import Tenant
from tenants.services import audit_record

from ..models import EmailMessage, EmailProviderProblem
from .suppressions import email_normalize, suppression_find

logger = logging.getLogger("commsportal.email")

#: The delivery task's name, as queued messages know it: never rename.
EMAIL_DELIVER_TASK = "verify.tasks.email_deliver_task"

#: A queued email untouched this long has lost its task (longer than any retry's backoff).
RELEASE_AFTER = timedelta(minutes=5)
#: SendGrid's answers that no retry can fix: the platform's key or its scope.
CONFIG_STATUSES = (401, 403)
Status = EmailMessage.Status


class EmailRetry(Exception):
    """A transient SendGrid failure: the task retries with backoff."""


def sendgrid_client() -> SendGridAPIClient:
    """The platform's SendGrid client (`SENDGRID_API_HOST`: SendGrid, or the local sandbox)."""
    client = SendGridAPIClient(api_key=settings.SENDGRID_API_KEY, host=settings.SENDGRID_API_HOST)
    client.client.timeout = settings.SENDGRID_HTTP_TIMEOUT
    return client


def custom_args_for(email: EmailMessage) -> dict[str, str]:
    """What every send carries for the Event Webhook (SendGrid wants string values)."""
    return {"tenant": str(email.tenant_id), "email_id": str(email.pk)}


# --------------------------------------------------------------------------- sending


def email_send(
    *,
    tenant: Tenant,
    to: str,
    subject: str,
    text: str,
    html: str = "",
    template_id: str = "",
    dynamic_data: dict | None = None,
    category: str,
    asm_group_id: int | None = None,
    actor: Any = None,
    audit: AuditContext | None = None,
) -> EmailMessage:
    """Record one email for `tenant` and queue its delivery (after commit).

    An address on the tenant's suppression list (for all email, or for `asm_group_id`) is
    recorded as `suppressed` and never sent. `template_id` (a SendGrid dynamic template,
    `d-…`) sends `dynamic_data` through that template; otherwise `text`/`html` are sent as
    they are. Audited when `audit` is given (a person's action); ValidationError for an
    invalid address, category or an email with nothing to send.
    """
    address = email_normalize(to)
    if category not in EmailMessage.Category.values:
        raise ValidationError(f"Unknown email category {category!r}.")
    if not template_id and not (text or html):
        raise ValidationError("An email needs a text or HTML body, or a dynamic template.")
    blocked = suppression_find(tenant=tenant, email=address, asm_group_id=asm_group_id)
    with transaction.atomic():
        email = EmailMessage.objects.create(
            tenant=tenant,
            to_email=address,
            subject=subject[:255],
            text=text,
            html=html,
            template_id=template_id,
            dynamic_data=dynamic_data or {},
            asm_group_id=asm_group_id,
            category=category,
            status=Status.SUPPRESSED if blocked else Status.QUEUED,
            error=f"On the suppression list: {blocked.get_reason_display()}." if blocked else "",
            requested_by=actor if getattr(actor, "pk", None) else None,
        )
        if audit is not None:
            audit_record(
                action="email.send",
                tenant=tenant,
                audit=audit,
                target=email_mask(address),
                details={"email_id": email.pk, "category": category, "status": email.status},
            )
        if not blocked:
            pk = email.pk
            transaction.on_commit(lambda: task_delay(EMAIL_DELIVER_TASK, pk), robust=True)
    logger.info(
        "email.queued" if not blocked else "email.suppressed", extra={"tenant": tenant.slug, "email_id": email.pk}
    )
    return email


def mail_build(email: EmailMessage) -> Mail:
    """The SDK's Mail for `email`: from the platform's sender in the tenant's name."""
    mail = Mail(from_email=From(settings.DEFAULT_FROM_EMAIL, email.tenant.name), to_emails=To(email.to_email))
    if email.template_id:
        mail.template_id = email.template_id
        mail.dynamic_template_data = {"subject": email.subject, **email.dynamic_data}
    else:
        mail.subject = email.subject
        if email.text:
            mail.add_content(email.text, "text/plain")
        if email.html:
            mail.add_content(email.html, "text/html")
    for key, value in custom_args_for(email).items():
        mail.add_custom_arg(CustomArg(key, value))
    mail.add_category(Category(email.category))
    if email.asm_group_id:
        mail.asm = Asm(GroupId(email.asm_group_id))
    return mail


def email_deliver(*, email_id: int) -> str:
    """Send one queued email (the delivery task's body); returns what happened.

    Raises `EmailRetry` on a transient failure (the email is queued again for the retry)."""
    email = EmailMessage.all_tenants.select_related("tenant").filter(pk=email_id).first()
    if email is None or email.status != Status.QUEUED:
        return "skipped"
    blocked = suppression_find(tenant=email.tenant, email=email.to_email, asm_group_id=email.asm_group_id)
    if blocked is not None:  # an event arrived since it was queued
        _finish(email, Status.SUPPRESSED, error=f"On the suppression list: {blocked.get_reason_display()}.")
        return Status.SUPPRESSED
    if not settings.SENDGRID_API_KEY:
        _finish(email, Status.FAILED, error="SENDGRID_API_KEY is not set: email cannot be sent.")
        provider_problem_open(status_code=0, message="SENDGRID_API_KEY is not set.")
        return "config_error"
    claimed = EmailMessage.all_tenants.filter(pk=email.pk, status=Status.QUEUED).update(
        status=Status.SENDING, send_attempts=F("send_attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return "skipped"  # another run took it
    try:
        response = sendgrid_client().send(mail_build(email))
    except HTTPError as exc:
        return _http_failure(email, exc)
    except (URLError, TimeoutError, ConnectionError, HTTPException) as exc:
        _requeue(email, error=f"SendGrid unreachable: {exc}")
        raise EmailRetry(str(exc)) from exc
    message_id = (response.headers.get("X-Message-Id") or "") if response.headers else ""
    # Only from `sending`: an early event (processed, delivered) already moved it further.
    EmailMessage.all_tenants.filter(pk=email.pk).update(sg_message_id=message_id[:64], sent_at=timezone.now())
    EmailMessage.all_tenants.filter(pk=email.pk, status=Status.SENDING).update(
        status=Status.SENT, error="", error_status=None, updated_at=timezone.now()
    )
    provider_problem_clear()
    return Status.SENT


def _http_failure(email: EmailMessage, exc: HTTPError) -> str:
    status = int(getattr(exc, "status_code", 0) or 0)
    detail = _sendgrid_error_text(exc)
    if status in CONFIG_STATUSES:
        why = "rejected the API key" if status == 401 else "refused: the API key lacks the mail.send permission"
        _finish(email, Status.FAILED, error=f"SendGrid {why} ({status}). {detail}".strip(), error_status=status)
        provider_problem_open(status_code=status, message=f"SendGrid {why} ({status}). {detail}".strip())
        logger.error("sendgrid.configuration_error", extra={"status": status, "email_id": email.pk})
        return "config_error"
    if status == 429 or status >= 500:
        _requeue(email, error=f"SendGrid answered {status}: {detail}", error_status=status)
        raise EmailRetry(f"SendGrid answered {status}") from exc
    _finish(email, Status.FAILED, error=f"SendGrid refused the email ({status}): {detail}", error_status=status)
    return Status.FAILED


def _sendgrid_error_text(exc: HTTPError) -> str:
    """SendGrid's own error messages from its JSON body, never the request (no key in it)."""
    body = getattr(exc, "body", b"") or b""
    try:
        data = json.loads(body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body)
        messages = [str(e.get("message", "")) for e in data.get("errors", []) if isinstance(e, dict)]
    except (ValueError, AttributeError):
        messages = []
    return "; ".join(m for m in messages if m)[:500]


def _finish(email: EmailMessage, status: str, **fields: Any) -> None:
    EmailMessage.all_tenants.filter(pk=email.pk).update(status=status, updated_at=timezone.now(), **fields)


def _requeue(email: EmailMessage, *, error: str, error_status: int | None = None) -> None:
    _finish(email, Status.QUEUED, error=error[:1000], error_status=error_status)


def email_delivery_abandon(*, email_id: int, reason: str) -> str:
    """The task's retries are spent: the email fails with the last reason."""
    EmailMessage.all_tenants.filter(pk=email_id, status=Status.QUEUED).update(
        status=Status.FAILED, error=f"Gave up after retries: {reason}"[:1000], updated_at=timezone.now()
    )
    return Status.FAILED


def emails_release(*, now: datetime | None = None, limit: int = 500) -> int:
    """Periodic: re-enqueue queued emails nobody is working on (their task was lost: the broker
    was down at send time, or a worker vanished), untouched for RELEASE_AFTER (longer than any
    retry's backoff). The delivery claim makes a second task harmless: only one sends."""
    cutoff = (now or timezone.now()) - RELEASE_AFTER
    ids = list(
        EmailMessage.all_tenants.filter(status=Status.QUEUED, updated_at__lt=cutoff)
        .order_by("updated_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    for pk in ids:
        EmailMessage.all_tenants.filter(pk=pk, status=Status.QUEUED).update(updated_at=timezone.now())
        if not task_delay(EMAIL_DELIVER_TASK, pk):
            break  # the broker is still down: the next run tries again
    return len(ids)


# --------------------------------------------------------------------------- configuration problems


def provider_problem_open(*, status_code: int, message: str) -> EmailProviderProblem:
    """Open (or refresh) the platform's SendGrid configuration problem."""
    now = timezone.now()
    for _attempt in range(2):
        problem = EmailProviderProblem.objects.filter(cleared_at__isnull=True).first()
        if problem is not None:
            EmailProviderProblem.objects.filter(pk=problem.pk).update(
                last_seen_at=now, occurrences=F("occurrences") + 1, status_code=status_code, message=message
            )
            problem.refresh_from_db()
            return problem
        try:
            with transaction.atomic():
                return EmailProviderProblem.objects.create(
                    status_code=status_code, message=message, detected_at=now, last_seen_at=now
                )
        except IntegrityError:
            continue  # another worker opened it: refresh that one
    return EmailProviderProblem.objects.get(cleared_at__isnull=True)


def provider_problem_clear() -> int:
    """A send succeeded: the configuration problem (if any) is over."""
    return EmailProviderProblem.objects.filter(cleared_at__isnull=True).update(cleared_at=timezone.now())


def provider_problem_current() -> EmailProviderProblem | None:
    """The open configuration problem, for the banners."""
    return EmailProviderProblem.objects.filter(cleared_at__isnull=True).first()
