"""Everything verify's email contributes to tenants' cross-app pages and jobs
(`tenants.registry`). Called once from `VerifyConfig.ready()`."""

from __future__ import annotations

from tenants.registry import alert_notifiers

from .notifications import ALERT_NOTIFIER


def email_registrations_install() -> None:
    alert_notifiers.register(ALERT_NOTIFIER)
