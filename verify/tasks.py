"""Celery tasks for verify: thin wrappers that take ids and call the services.

Retries and their backoff live here; what is retryable lives in `verify.email.sending`.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from messaging.delivery.retries import MAX_RETRIES, backoff_countdown

from .codes.expiry import verifications_expire
from .email.sending import EMAIL_DELIVER_TASK, EmailRetry, email_deliver, email_delivery_abandon, emails_release

#: The expiry job's name, as the beat schedule knows it: never rename.
VERIFICATIONS_EXPIRE_TASK = "verify.tasks.verifications_expire_task"


@shared_task(bind=True, name=EMAIL_DELIVER_TASK, acks_late=True, max_retries=MAX_RETRIES)
def email_deliver_task(self, email_id: int) -> str:
    """Send one queued email through SendGrid (`email_deliver`); retry 429/5xx/unreachable
    with backoff, then give up. A 401/403 is never retried (a configuration error)."""
    try:
        return email_deliver(email_id=email_id)
    except EmailRetry as exc:
        if self.request.retries >= self.max_retries:
            return email_delivery_abandon(email_id=email_id, reason=str(exc))
        raise self.retry(countdown=backoff_countdown(self.request.retries)) from exc


@shared_task(name="verify.tasks.emails_release_task")
def emails_release_task() -> int:
    """Periodic (every minute): re-enqueue queued emails whose task was lost (`emails_release`)."""
    return emails_release()


@shared_task(name=VERIFICATIONS_EXPIRE_TASK)
def verifications_expire_task() -> int:
    """Periodic: pending verifications past their code's expiry become expired."""
    return verifications_expire(now=timezone.now())
