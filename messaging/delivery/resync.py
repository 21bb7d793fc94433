"""Resync with Twilio: what a lost webhook never told the portal.

Twilio does not resend a status callback or an inbound-message webhook the portal answered with
a 5xx (database down, a deploy), so without this a message could say ``sent`` forever while
Twilio says ``delivered``, and a STOP could go unrecorded. Every run, for each tenant, with that
tenant's own client:

* Outbound messages with a SID that have sat in a non-final status longer than `STALE_AFTER`
  (newest first, at most `BATCH_PER_TENANT`) are fetched from Twilio; a status that moves
  forward goes through `status_callback_apply`, the same forward-only, idempotent path as the
  webhook. Newest first, because a carrier that never reports delivery leaves old rows at
  ``sent`` for good, and they must not crowd out a lost callback of a few minutes ago.
* Inbound messages to each of the tenant's numbers since the last run (with an overlap, see
  `INBOUND_OVERLAP`) are listed; each goes through `inbound_message_receive`, which stores a
  SID once and applies its keyword once, so a rerun changes nothing. The reply a keyword would
  have had in TwiML is not sent: that moment has passed (and in ``twilio`` keyword mode Twilio
  answered it already).

A tenant whose Twilio calls fail is logged and skipped; the next run tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from tenants.models import PhoneNumber, Tenant
from tenants.twilio import TwilioError, tenant_client, twilio_errors

from .. import statuses
from ..intake.inbound import inbound_message_receive
from ..intake.status import CALLBACK_STATUSES, status_callback_apply
from ..models import Message

logger = logging.getLogger("commsportal.messaging")

__all__ = [
    "ResyncResult",
    "messages_resync",
    "tenant_messages_resync",
]

#: A message in a non-final status this long after its last change is asked about at Twilio.
STALE_AFTER = timedelta(minutes=10)
#: Older than this, a message still not final is taken as one whose carrier never reports.
HORIZON = timedelta(days=3)
#: Messages fetched per tenant per run (one API call each).
BATCH_PER_TENANT = 200
#: The first run (or one after the cache was lost) looks this far back for inbound messages.
INBOUND_LOOKBACK = timedelta(hours=2)
#: Each run overlaps the previous one this much: clocks differ and Twilio's list lags a little.
INBOUND_OVERLAP = timedelta(minutes=10)
#: Inbound messages listed per number per run.
INBOUND_LIMIT = 2000

_NOT_FINAL_WITH_SID = sorted(
    {statuses.ACCEPTED, statuses.SCHEDULED, statuses.QUEUED, statuses.SENDING, statuses.SENT}
    | {statuses.PARTIALLY_DELIVERED}
)


@dataclass
class ResyncResult:
    """What one run changed: statuses advanced, inbound messages stored, tenants that failed."""

    statuses_applied: int = 0
    inbound_stored: int = 0
    failed_tenants: list[str] = field(default_factory=list)


def messages_resync(*, now: datetime | None = None, stale_after: timedelta = STALE_AFTER) -> ResyncResult:
    """Periodic: resync every tenant that can still talk to Twilio (module docstring).

    `stale_after` is how long a non-final status must sit before Twilio is asked; a drill that
    has just cut the database passes a shorter one instead of waiting out `STALE_AFTER`."""
    now = now or timezone.now()
    total = ResyncResult()
    for tenant in Tenant.objects.exclude(status=Tenant.Status.CLOSED).order_by("pk"):
        try:
            result = tenant_messages_resync(tenant=tenant, now=now, stale_after=stale_after)
        except TwilioError as exc:
            logger.warning("message.resync.failed", extra={"tenant": tenant.slug, "error": str(exc)[:200]})
            total.failed_tenants.append(tenant.slug)
            continue
        total.statuses_applied += result.statuses_applied
        total.inbound_stored += result.inbound_stored
    return total


def tenant_messages_resync(*, tenant: Tenant, now: datetime, stale_after: timedelta = STALE_AFTER) -> ResyncResult:
    """Resync one tenant with its own client. Raises TwilioError when Twilio can't be asked."""
    with twilio_errors():
        client = tenant_client(tenant)
    result = ResyncResult()
    result.statuses_applied = _statuses_resync(tenant=tenant, client=client, now=now, stale_after=stale_after)
    result.inbound_stored = _inbound_resync(tenant=tenant, client=client, now=now)
    if result.statuses_applied or result.inbound_stored:
        logger.info(
            "message.resync.applied",
            extra={"tenant": tenant.slug, "statuses": result.statuses_applied, "inbound": result.inbound_stored},
        )
    return result


def _statuses_resync(*, tenant: Tenant, client, now: datetime, stale_after: timedelta) -> int:
    stale = list(
        Message.objects.for_tenant(tenant)
        .filter(
            direction=Message.Direction.OUTBOUND,
            sid__isnull=False,
            status__in=_NOT_FINAL_WITH_SID,
            status_updated_at__lt=now - stale_after,
            status_updated_at__gte=now - HORIZON,
        )
        .order_by("-status_updated_at", "-pk")
        .only("pk", "sid", "status")[:BATCH_PER_TENANT]
    )
    applied = 0
    for message in stale:
        try:
            with twilio_errors():
                found = client.messages(message.sid).fetch()
        except TwilioError as exc:
            if exc.retryable or exc.status in (401, 403):
                raise  # unreachable, busy or refusing the credentials: the tenant waits for the next run
            logger.warning("message.resync.fetch_failed", extra={"message_id": message.pk, "code": exc.code})
            continue
        status = str(found.status or "").lower()
        if status not in CALLBACK_STATUSES or not statuses.status_should_advance(message.status, status):
            continue
        status_callback_apply(tenant=tenant, params=_status_params(found, status))
        applied += 1
    return applied


def _status_params(found, status: str) -> dict[str, str]:
    """A fetched Message resource in the shape of Twilio's status callback."""
    params = {
        "MessageSid": found.sid,
        "MessageStatus": status,
        "AccountSid": found.account_sid or "",
        "From": found.from_ or "",
        "To": found.to or "",
        "MessagingServiceSid": found.messaging_service_sid or "",
    }
    if found.error_code:
        params["ErrorCode"] = str(found.error_code)
    if found.num_segments:
        params["NumSegments"] = str(found.num_segments)
    return params


def _inbound_params(found) -> dict[str, str]:
    """A listed inbound Message resource in the shape of Twilio's incoming-message webhook
    (media URLs are a subresource the list does not carry: the count is kept)."""
    return {
        "MessageSid": found.sid,
        "AccountSid": found.account_sid or "",
        "From": found.from_ or "",
        "To": found.to or "",
        "Body": found.body or "",
        "MessagingServiceSid": found.messaging_service_sid or "",
        "NumSegments": str(found.num_segments or ""),
        "NumMedia": str(found.num_media or "0"),
    }


def _inbound_resync(*, tenant: Tenant, client, now: datetime) -> int:
    key = f"messaging:resync:inbound:{tenant.pk}"
    since = cache.get(key) or now - INBOUND_LOOKBACK
    window_start = (since - INBOUND_OVERLAP).astimezone(UTC)
    numbers = (
        PhoneNumber.objects.for_tenant(tenant).filter(released_at__isnull=True).values_list("phone_number", flat=True)
    )
    stored = 0
    for number in sorted(set(numbers)):
        with twilio_errors():
            listed = client.messages.list(to=number, date_sent_after=window_start, limit=INBOUND_LIMIT)
        if len(listed) >= INBOUND_LIMIT:
            logger.warning("message.resync.inbound_limit", extra={"tenant": tenant.slug, "limit": INBOUND_LIMIT})
        for found in listed:
            if not str(found.direction or "").startswith("inbound"):
                continue
            if Message.objects.for_tenant(tenant).filter(sid=found.sid).exists():
                continue  # the webhook (or an earlier run) stored it
            result = inbound_message_receive(tenant=tenant, params=_inbound_params(found))
            if result.created:
                stored += 1
                logger.warning(
                    "message.resync.inbound_recovered",
                    extra={"tenant": tenant.slug, "message_id": result.message.pk, "keyword": result.keyword},
                )
    cache.set(key, now, timeout=int(timedelta(days=7).total_seconds()))
    return stored
