"""Pending verifications whose code expired become `expired` (Verify's own codes expire after
the same 10 minutes), so the log and its conversion rate tell abandoned attempts from live ones,
and the SMS bodies of expired fallback codes are redacted. A deliberate cross-tenant job: every
tenant's rows and the platform's, in two UPDATEs each."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from messaging.models import Message

from ..models import StaffVerification, Verification, VerificationStatus
from .fallback import REDACTED


@transaction.atomic
def verifications_expire(*, now: datetime) -> int:
    """Mark every overdue pending verification expired; returns how many."""
    due = Verification.all_tenants.filter(status=VerificationStatus.PENDING, expires_at__lte=now)
    message_ids = list(due.filter(message__isnull=False).values_list("message_id", flat=True))
    count = due.update(status=VerificationStatus.EXPIRED, code_hmac="", updated_at=now)
    Message.all_tenants.filter(pk__in=message_ids).update(body=REDACTED)
    staff = StaffVerification.objects.filter(status=VerificationStatus.PENDING, expires_at__lte=now)
    return count + staff.update(status=VerificationStatus.EXPIRED, code_hmac="", updated_at=now)
