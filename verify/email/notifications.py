"""Portal notices that go out as email through SendGrid: alerts to a tenant's admins
(`tenants.alerts` asks `tenants.registry.alert_notifiers`, which verify fills)."""

from __future__ import annotations

from django.conf import settings

from tenants.models import Tenant
from tenants.registry import AlertNotifier

from ..models import EmailMessage
from .sending import email_send


def alert_email_notify(*, tenant: Tenant, recipients: list[str], subject: str, body: str) -> int | None:
    """Queue one alert email per admin through SendGrid; None (Django's mail backend takes
    over) while no SendGrid API key is configured. Suppressed admins are skipped."""
    if not settings.SENDGRID_API_KEY:
        return None
    queued = 0
    for recipient in recipients:
        email = email_send(
            tenant=tenant, to=recipient, subject=subject, text=body, category=EmailMessage.Category.ALERT
        )
        queued += email.status == EmailMessage.Status.QUEUED
    return queued


ALERT_NOTIFIER = AlertNotifier(key="verify.sendgrid", notify=alert_email_notify)
