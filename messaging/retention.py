"""Messaging's part of the retention purge, registered in `tenants.registry.retention_purgers`.

tenants decides when (each tenant's `retention_days`, legal holds, batches, the deadline); this
module decides what goes: a message's body and media URLs. Its metadata (who, when, status,
error, segments) stays for reporting. Never purged:

* messages marked `is_evidence` (a keyword that changed an opt-out or consent state) and
  messages whose revocation review is still open (an admin must still read them);
* outbound messages still `pending` (their body has not been sent yet);
* the consent and opt-out ledgers (`OptOutEvent`, `ConsentEvent`, `ConsentDisclosure`): TCPA
  claims run 4 years, so that evidence is kept at least 5 years; nothing here deletes it.

With the tenant's `redact_at_twilio`, purged bodies are also redacted in Twilio's message log.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db.models import Q, QuerySet

from tenants.models import Tenant
from tenants.registry import RetentionPurger
from tenants.twilio import tenant_client, twilio_each

from . import statuses
from .models import Message, RevocationReview

# The purge's log: one place to read for everything retention did, whichever app did it.
logger = logging.getLogger("commsportal.retention")

TWILIO_BATCH_SIZE = 100  # smaller batches when each purged message also costs a Twilio call


def _purgeable(tenant: Tenant, cutoff: datetime) -> QuerySet:
    """Messages of `tenant` older than `cutoff` whose body or media may go (module docstring)."""
    return (
        Message.objects.for_tenant(tenant)
        .filter(created_at__lt=cutoff, body_purged_at__isnull=True, is_evidence=False)
        .filter(~Q(body="") | ~Q(media=[]))
        .exclude(status=statuses.PENDING)
        .exclude(revocation_review__status=RevocationReview.Status.OPEN)
    )


def message_bodies_batch_ids(*, tenant: Tenant, cutoff: datetime, limit: int) -> list[int]:
    return list(_purgeable(tenant, cutoff).order_by("id").values_list("id", flat=True)[:limit])


def message_bodies_batch_purge(
    *, tenant: Tenant, cutoff: datetime, ids: list[int], now: datetime, remote: bool
) -> tuple[int, list[str]]:
    """Purge the batch's bodies and media (rechecking the rules: a row may have changed since
    it was listed); returns how many, and their Twilio SIDs when `remote`."""
    batch = _purgeable(tenant, cutoff).filter(id__in=ids)
    sids = list(batch.exclude(sid=None).values_list("sid", flat=True)) if remote else []
    return batch.update(body="", media=[], body_purged_at=now), sids


def message_bodies_twilio_redact(*, tenant: Tenant, ids: list[str]) -> tuple[int, int]:
    """Redact bodies in Twilio's message log (POST Messages/{sid} Body=""); (done, failed).

    404 counts as done: Twilio already deleted the message (its own 400-day retention).
    """
    client = tenant_client(tenant)
    done, failures = twilio_each(
        ids, lambda sid: client.api.v2010.accounts(tenant.account_sid).messages(sid).update(body="")
    )
    for sid, exc in failures:
        logger.warning(
            "retention.twilio_redact_failed tenant=%s sid=%s code=%s", tenant.slug, sid, exc.code or exc.status
        )
    return done, len(failures)


MESSAGE_BODIES_PURGER = RetentionPurger(
    key="messaging.message_bodies",
    batch_ids=message_bodies_batch_ids,
    batch_purge=message_bodies_batch_purge,
    remote_redact=message_bodies_twilio_redact,
    remote_batch_size=TWILIO_BATCH_SIZE,
)
