"""Email's part of the retention purge (`tenants.registry.retention_purgers`): after the
tenant's retention period an email's contents (text, HTML, template data) go; the log row
(address, subject, status, times) and SendGrid's events stay for reporting, as a message's
metadata does. Emails still waiting to be sent keep their contents."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from tenants.models import Tenant
from tenants.registry import RetentionPurger

from ..models import EmailMessage

WAITING = (EmailMessage.Status.QUEUED, EmailMessage.Status.SENDING)


def _purgeable(tenant: Tenant, cutoff: datetime) -> QuerySet[EmailMessage]:
    return (
        EmailMessage.objects.for_tenant(tenant)
        .filter(created_at__lt=cutoff)
        .filter(~Q(text="") | ~Q(html="") | ~Q(dynamic_data={}))
        .exclude(status__in=WAITING)
    )


def email_contents_batch_ids(*, tenant: Tenant, cutoff: datetime, limit: int) -> list[int]:
    return list(_purgeable(tenant, cutoff).order_by("id").values_list("id", flat=True)[:limit])


def email_contents_batch_purge(
    *, tenant: Tenant, cutoff: datetime, ids: list[int], now: datetime, remote: bool
) -> tuple[int, list[str]]:
    """Blank the batch's contents (rules rechecked); nothing is held at Twilio."""
    return _purgeable(tenant, cutoff).filter(id__in=ids).update(text="", html="", dynamic_data={}, updated_at=now), []


EMAIL_CONTENTS_PURGER = RetentionPurger(
    key="verify.email_contents", batch_ids=email_contents_batch_ids, batch_purge=email_contents_batch_purge
)
