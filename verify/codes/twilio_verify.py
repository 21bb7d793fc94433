"""Twilio Verify V2 calls of one scope: its Verify service (created through the API when it
has none), starting a verification and checking a code. Every failure is a `TwilioError`."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from twilio.rest import Client

from tenants.models import Tenant
from tenants.twilio import parent_client, tenant_client, twilio_errors

from ..models import PlatformVerifyService
from .breaker import Scope

#: Twilio shows the service's friendly name in the code message; it allows at most 30 characters.
FRIENDLY_NAME_MAX = 30


def _client(scope: Scope) -> Client:
    return tenant_client(scope.tenant) if scope.tenant is not None else parent_client()


def _create_service(client: Client, name: str) -> str:
    with twilio_errors():
        return client.verify.v2.services.create(friendly_name=name[:FRIENDLY_NAME_MAX]).sid


def verify_service_sid(*, scope: Scope) -> str:
    """The scope's Verify service SID, created through the API (and stored) when missing.

    A tenant's is stored on the tenant, the platform's in `PlatformVerifyService` unless
    VERIFY_PLATFORM_SERVICE_SID names it. The row is locked while creating, so two first
    requests at once make one service.
    """
    if scope.tenant is None:
        if settings.VERIFY_PLATFORM_SERVICE_SID:
            return settings.VERIFY_PLATFORM_SERVICE_SID
        existing = PlatformVerifyService.objects.order_by("id").first()
        if existing:
            return existing.sid
        sid = _create_service(_client(scope), "Portal sign-in")
        return PlatformVerifyService.objects.get_or_create(sid=sid)[0].sid
    if scope.tenant.verify_service_sid:
        return scope.tenant.verify_service_sid
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=scope.tenant.pk)
        if not locked.verify_service_sid:
            locked.verify_service_sid = _create_service(_client(scope), scope.tenant.name)
            Tenant.objects.filter(pk=locked.pk).update(verify_service_sid=locked.verify_service_sid)
    scope.tenant.verify_service_sid = locked.verify_service_sid
    return locked.verify_service_sid


def verify_start(*, scope: Scope, to: str, channel: str) -> tuple[str, str]:
    """Start (or resend) a verification; returns (Verification SID, status)."""
    service_sid = verify_service_sid(scope=scope)
    with twilio_errors():
        verification = _client(scope).verify.v2.services(service_sid).verifications.create(to=to, channel=channel)
    return verification.sid, verification.status


def verify_check(*, scope: Scope, verification_sid: str, code: str) -> str:
    """Check `code` against a verification; returns its status (approved when right)."""
    service_sid = verify_service_sid(scope=scope)
    with twilio_errors():
        check = (
            _client(scope)
            .verify.v2.services(service_sid)
            .verification_checks.create(verification_sid=verification_sid, code=code)
        )
    return check.status
