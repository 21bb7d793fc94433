"""Voice's Celery tasks: thin wrappers that take ids and call `voice.calls`. Names are explicit
and never change (beat rows and queued messages refer to them)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from messaging.delivery.retries import backoff_countdown
from tenants.models import Tenant
from tenants.twilio import TwilioError

from .calls.placing import DialOutcome, call_dial
from .calls.recordings import recordings_remote_delete
from .calls.resync import call_price_fetch, calls_resync

#: Twilio prices a call within minutes of its end: ask this often, then give up (it shows "—").
PRICE_RETRY_SECONDS = 60
PRICE_MAX_RETRIES = 10
DIAL_MAX_RETRIES = 5


@shared_task(bind=True, name="voice.tasks.call_dial_task", acks_late=True, max_retries=DIAL_MAX_RETRIES)
def call_dial_task(self, call_id: int) -> str:
    """Place a pending call at Twilio, at most once (`call_dial`); retried only when Twilio
    certainly did not get the request."""
    outcome = call_dial(call_id=call_id)
    if outcome == DialOutcome.RETRY and self.request.retries < self.max_retries:
        raise self.retry(countdown=backoff_countdown(self.request.retries, ambiguous=False))
    return outcome


@shared_task(bind=True, name="voice.tasks.call_price_fetch_task", max_retries=PRICE_MAX_RETRIES)
def call_price_fetch_task(self, call_id: int) -> bool:
    """Store a final call's price from its Call resource (`call_price_fetch`)."""
    try:
        done = call_price_fetch(call_id=call_id)
    except TwilioError as exc:
        if not exc.retryable or self.request.retries >= self.max_retries:
            return False
        raise self.retry(countdown=PRICE_RETRY_SECONDS) from exc
    if not done and self.request.retries < self.max_retries:
        raise self.retry(countdown=PRICE_RETRY_SECONDS)
    return done


@shared_task(name="voice.tasks.calls_resync_task")
def calls_resync_task(stale_after_seconds: float | None = None) -> dict:
    """Periodic (every 5 minutes): heal lost call status callbacks from Twilio (`calls_resync`)."""
    if stale_after_seconds is None:
        result = calls_resync()
    else:
        result = calls_resync(stale_after=timedelta(seconds=stale_after_seconds))
    return {"statuses_applied": result.statuses_applied, "failed_tenants": result.failed_tenants}


@shared_task(name="voice.tasks.recordings_delete_task", acks_late=True)
def recordings_delete_task(tenant_id: int, sids: list[str]) -> dict:
    """Delete recordings at Twilio after retention or erasure deleted them here."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return {"deleted": 0, "failed": len(sids)}
    deleted, failed = recordings_remote_delete(tenant=tenant, sids=sids)
    return {"deleted": deleted, "failed": failed}
