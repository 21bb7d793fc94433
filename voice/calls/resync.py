"""What Twilio knows about a call and the portal may have missed: its price, and a status whose
callback was lost.

* `call_price_fetch`: Twilio prices a call only after it ends, and no callback carries the
  price, so a task fetches the Call resource once the call is final (retrying while the price
  is still empty).
* `calls_resync` (periodic, like `messaging.delivery.resync` for messages): Twilio does not
  resend a status callback the portal answered with a 5xx, so calls that sat in a non-final
  status longer than `STALE_AFTER` are fetched from Twilio with the tenant's own client, and
  Twilio's answer goes through `call_status_apply`, the same forward-only, idempotent path as
  the webhook. Newest first, at most `BATCH_PER_TENANT` per tenant and run.

A tenant whose Twilio calls fail is logged and skipped; the next run tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from tenants.models import Tenant
from tenants.twilio import TwilioError, tenant_client, twilio_errors

from ..models import Call
from . import statuses
from .status import call_price_store, call_status_apply

logger = logging.getLogger("commsportal.voice")

__all__ = ["CallsResyncResult", "call_price_fetch", "calls_resync", "tenant_calls_resync"]

#: A call in a non-final status this long after its last change is asked about at Twilio
#: (longer than a message's: a real call may ring, then talk, for a while).
STALE_AFTER = timedelta(minutes=15)
#: Older than this, a call still not final is left alone (Twilio ends calls within 4 hours).
HORIZON = timedelta(days=3)
BATCH_PER_TENANT = 200


@dataclass
class CallsResyncResult:
    statuses_applied: int = 0
    failed_tenants: list[str] = field(default_factory=list)


def call_price_fetch(*, call_id: int) -> bool:
    """Store the price of a final call from its Call resource. False while Twilio has not
    priced it yet (the task retries); True once stored, or when there is nothing to fetch.
    Raises TwilioError when Twilio can't be asked."""
    call = Call.all_tenants.select_related("tenant").filter(pk=call_id).first()
    if call is None or not call.sid or call.price is not None:
        return True
    with twilio_errors():
        found = tenant_client(call.tenant).calls(call.sid).fetch()
    return call_price_store(call=call, price=found.price, price_unit=found.price_unit or "")


def calls_resync(*, now: datetime | None = None, stale_after: timedelta = STALE_AFTER) -> CallsResyncResult:
    """Periodic: resync every tenant's stale calls (module docstring)."""
    now = now or timezone.now()
    total = CallsResyncResult()
    for tenant in Tenant.objects.exclude(status=Tenant.Status.CLOSED).order_by("pk"):
        try:
            total.statuses_applied += tenant_calls_resync(tenant=tenant, now=now, stale_after=stale_after)
        except TwilioError as exc:
            logger.warning("voice.resync.failed", extra={"tenant": tenant.slug, "error": str(exc)[:200]})
            total.failed_tenants.append(tenant.slug)
    return total


def tenant_calls_resync(*, tenant: Tenant, now: datetime, stale_after: timedelta = STALE_AFTER) -> int:
    """Resync one tenant's stale calls; the number of statuses applied. Raises TwilioError when
    Twilio can't be asked at all (the tenant waits for the next run)."""
    stale = list(
        Call.objects.for_tenant(tenant)
        .filter(
            sid__isnull=False,
            status__in=statuses.NOT_FINAL_AT_TWILIO,
            status_updated_at__lt=now - stale_after,
            status_updated_at__gte=now - HORIZON,
        )
        .order_by("-status_updated_at", "-pk")
        .only("pk", "sid", "status", "sequence_number")[:BATCH_PER_TENANT]
    )
    if not stale:
        return 0
    with twilio_errors():
        client = tenant_client(tenant)
    applied = 0
    for call in stale:
        try:
            with twilio_errors():
                found = client.calls(call.sid).fetch()
        except TwilioError as exc:
            if exc.retryable or exc.status in (401, 403):
                raise
            logger.warning("voice.resync.fetch_failed", extra={"call_id": call.pk, "code": exc.code})
            continue
        status = str(found.status or "").lower()
        if status not in statuses.CALLBACK_STATUSES or not statuses.call_status_should_advance(call.status, status):
            continue
        call_status_apply(tenant=tenant, params=_status_params(found, status))
        applied += 1
    if applied:
        logger.info("voice.resync.applied", extra={"tenant": tenant.slug, "statuses": applied})
    return applied


def _status_params(found, status: str) -> dict[str, str]:
    """A fetched Call resource in the shape of Twilio's status callback (no SequenceNumber:
    the resource has none, so the forward-only rank alone decides)."""
    params = {
        "CallSid": found.sid,
        "CallStatus": status,
        "AccountSid": found.account_sid or "",
        "From": found._from or "",  # the SDK names the Call resource's `from` so
        "To": found.to or "",
        "Direction": found.direction or "",
        "CallbackSource": "portal-resync",
    }
    if found.duration not in (None, ""):
        params["CallDuration"] = str(found.duration)
    if found.answered_by:
        params["AnsweredBy"] = found.answered_by
    if found.end_time is not None and status in statuses.FINAL_STATUSES:
        params["Timestamp"] = found.end_time.strftime("%a, %d %b %Y %H:%M:%S +0000")
    return params
