"""The one way a Call row comes to exist for a CallSid, whichever webhook arrives first."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from tenants.models import Tenant

from ..models import Call


def call_direction(twilio_direction: str) -> str:
    """Twilio says inbound, outbound-api or outbound-dial; the portal keeps inbound/outbound."""
    return Call.Direction.INBOUND if twilio_direction in ("", "inbound") else Call.Direction.OUTBOUND


def call_get_or_create(
    *, tenant: Tenant, sid: str, direction: str, from_number: str, to_number: str, status: str
) -> tuple[Call, bool]:
    """The Call for `sid` in `tenant`, created on first sight; safe under concurrent webhooks.

    A CallSid that exists under another tenant is never returned (the unique SID makes the
    insert fail, and the scoped lookup finds nothing): the caller gets `Call.DoesNotExist`.
    """
    calls = Call.objects.for_tenant(tenant)
    call = calls.filter(sid=sid).first()
    if call is not None:
        return call, False
    try:
        with transaction.atomic():
            return (
                Call.objects.create(
                    tenant=tenant,
                    sid=sid,
                    direction=call_direction(direction),
                    from_number=from_number,
                    to_number=to_number,
                    status=status,
                ),
                True,
            )
    except IntegrityError:
        return calls.get(sid=sid), False
