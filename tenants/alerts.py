"""Alerts: raise one when a tenant's traffic goes wrong, clear it when it recovers.

`alerts_check` runs every five minutes (`tenants.tasks.delivery_alerts_check`) over every
tenant at once, in a few grouped queries. tenants checks one kind itself; the feature apps
register theirs in `tenants.registry.alert_checks` (messaging: the delivery **failure_rate**,
see `messaging/alerts.py`).

* **signature_failures** — a spike of webhooks rejected for an invalid Twilio signature
  (usually a rotated auth token, or someone forging requests): raised when today's count
  (UTC day, `WebhookRejection`) is at least 10 AND more than 3x the tenant's daily average
  over the previous 7 days (days without rejections count as 0). Cleared by the first check
  where that no longer holds — in practice after midnight UTC, when today's counter restarts.

An alert is a row with `cleared_at` null; a partial unique constraint allows one open alert
per (tenant, kind), so a still-failing tenant is never alerted (or emailed) again every five
minutes, and two overlapping checks cannot both raise it. Raising emails the tenant's admins;
clearing sends them a short "recovered" email. Every role sees open alerts as a banner
(`tenants.context_processors.alerts`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from .models import Alert, Membership, Tenant, WebhookRejection
from .registry import AlertCheck, AlertReading, alert_checks, alert_notifiers
from .rejections import webhook_rejections_flush_all

logger = logging.getLogger("commsportal.alerts")

SIGNATURE_MIN_TODAY = 10
SIGNATURE_SPIKE_FACTOR = 3
SIGNATURE_BASELINE_DAYS = 7


def signature_spike(*, today: int, previous_days: list[int]) -> bool:
    """`previous_days`: the counts of the SIGNATURE_BASELINE_DAYS days before today (0 if none)."""
    average = sum(previous_days) / SIGNATURE_BASELINE_DAYS
    return today >= SIGNATURE_MIN_TODAY and today > SIGNATURE_SPIKE_FACTOR * average


# --------------------------------------------------------------------------- selectors


def alert_open_list(*, tenant: Tenant) -> list[Alert]:
    """The tenant's open alerts, oldest first (the banner)."""
    return list(Alert.objects.for_tenant(tenant).filter(cleared_at__isnull=True).order_by("raised_at", "id"))


def alerts_open_by_tenant() -> dict[int, list[Alert]]:
    """Cross-tenant, for the support overview: tenant id -> its open alerts."""
    result: dict[int, list[Alert]] = defaultdict(list)
    for alert in Alert.all_tenants.filter(cleared_at__isnull=True).order_by("raised_at", "id"):
        result[alert.tenant_id].append(alert)
    return dict(result)


def tenant_admin_emails(*, tenant: Tenant) -> list[str]:
    return sorted(
        set(
            Membership.objects.filter(tenant=tenant, role=Membership.Role.ADMIN, user__is_active=True)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )


# --------------------------------------------------------------------------- services


def _notify(*, tenant: Tenant, subject: str, lines: list[str]) -> int:
    """Email the tenant's admins; a mail failure is logged, never stops the other tenants."""
    recipients = tenant_admin_emails(tenant=tenant)
    if not recipients:
        logger.warning("alerts.no_admin_email", extra={"tenant": tenant.slug})
        return 0
    url = settings.PUBLIC_BASE_URL + reverse("tenant_dashboard", kwargs={"tenant_slug": tenant.slug})
    body = "\n\n".join([*lines, f"Dashboard: {url}", "— commsportal monitoring"])
    subject = f"[commsportal] {tenant.name}: {subject}"
    try:
        for notifier in alert_notifiers:  # an app's channel (verify: SendGrid) when it takes it
            sent = notifier.notify(tenant=tenant, recipients=recipients, subject=subject, body=body)
            if sent is not None:
                return sent
        return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:  # noqa: BLE001 - SMTP trouble must not block the other tenants' checks
        logger.exception("alerts.email_failed", extra={"tenant": tenant.slug})
        return 0


def alert_raise(*, tenant: Tenant, kind: str, details: dict, now: datetime | None = None) -> Alert | None:
    """Open an alert and email the tenant's admins; None (and no email) if one is already open."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(tenant=tenant, kind=kind, raised_at=now or timezone.now(), details=details)
    except IntegrityError:
        return None  # an open alert of this kind exists (or a concurrent check just raised it)
    logger.warning("alerts.raised", extra={"tenant": tenant.slug, "kind": kind, "details": details})
    _notify(
        tenant=tenant,
        subject=f"{alert.get_kind_display()} alert",
        lines=[
            alert.summary,
            _check_of(kind).advice,
            "You will get one more email when it recovers; not one every check.",
        ],
    )
    return alert


def alert_clear(*, alert: Alert, details: dict, now: datetime | None = None) -> bool:
    """Close an open alert and tell the admins it recovered; False if it was already closed."""
    now = now or timezone.now()
    merged = {**alert.details, "cleared": details}
    if (
        not Alert.objects.for_tenant(alert.tenant)
        .filter(pk=alert.pk, cleared_at__isnull=True)
        .update(cleared_at=now, details=merged)
    ):
        return False
    alert.cleared_at, alert.details = now, merged
    logger.info("alerts.cleared", extra={"tenant": alert.tenant.slug, "kind": alert.kind})
    _notify(
        tenant=alert.tenant,
        subject=f"{alert.get_kind_display()} recovered",
        lines=[f"The {alert.get_kind_display().lower()} alert raised {alert.raised_at:%Y-%m-%d %H:%M} UTC recovered."],
    )
    return True


def _signature_readings(*, now: datetime) -> dict[int, AlertReading]:
    """Every tenant with signature rejections in the last SIGNATURE_BASELINE_DAYS days + today."""
    webhook_rejections_flush_all()  # counts still pending in the cache count too
    today = now.date()
    counts: dict[int, dict] = defaultdict(dict)
    for tenant_id, day, count in WebhookRejection.objects.filter(
        tenant__isnull=False,
        reason=WebhookRejection.Reason.INVALID_SIGNATURE,
        day__gte=today - timedelta(days=SIGNATURE_BASELINE_DAYS),
        day__lte=today,
    ).values_list("tenant_id", "day", "count"):
        counts[tenant_id][day] = count
    return {tenant_id: _signature_reading(days=days, now=now) for tenant_id, days in counts.items()}


def _signature_reading(*, days: dict, now: datetime) -> AlertReading:
    """The reading of one tenant from its per-day counts ({} for a tenant without any)."""
    today = now.date()
    previous = [days.get(today - timedelta(days=n), 0) for n in range(1, SIGNATURE_BASELINE_DAYS + 1)]
    spike = signature_spike(today=days.get(today, 0), previous_days=previous)
    details = {
        "day": today.isoformat(),
        "today": days.get(today, 0),
        "baseline_average": round(sum(previous) / SIGNATURE_BASELINE_DAYS, 2),
        "factor": SIGNATURE_SPIKE_FACTOR,
        "minimum": SIGNATURE_MIN_TODAY,
        "checked_at": now.isoformat(),
    }
    return AlertReading(breached=spike, recovered=not spike, details=details)


def _signature_idle(*, now: datetime) -> AlertReading:
    return _signature_reading(days={}, now=now)


SIGNATURE_CHECK = AlertCheck(
    key=Alert.Kind.SIGNATURE_FAILURES,
    evaluate=_signature_readings,
    idle=_signature_idle,
    advice=(
        "Twilio webhooks are being rejected because their signature does not match the tenant's "
        "auth token: was the token rotated at Twilio but not in the portal? If not, someone may be "
        "sending forged requests. Status callbacks and inbound messages are lost while this lasts."
    ),
    order=1000,
)


def _checks() -> list[AlertCheck]:
    """The apps' checks, then tenants' own."""
    return [*alert_checks, SIGNATURE_CHECK]


def _check_of(kind: str) -> AlertCheck:
    for check in _checks():
        if check.key == kind:
            return check
    raise LookupError(f"No alert check registered for {kind!r}.")


def alerts_check(*, now: datetime | None = None) -> dict[str, int]:
    """Raise and clear every tenant's alerts of every registered kind; returns counts."""
    now = now or timezone.now()
    checks = _checks()
    readings = {check.key: check.evaluate(now=now) for check in checks}
    open_alerts = {(a.tenant_id, a.kind): a for a in Alert.all_tenants.filter(cleared_at__isnull=True)}
    tenant_ids = {tenant_id for by_tenant in readings.values() for tenant_id in by_tenant}
    tenant_ids |= {tenant_id for tenant_id, _ in open_alerts}
    result = {"raised": 0, "cleared": 0}
    for tenant_id, tenant in Tenant.objects.in_bulk(tenant_ids).items():
        for check in checks:
            reading = readings[check.key].get(tenant_id) or check.idle(now=now)
            current = open_alerts.get((tenant_id, check.key))
            if current is None and reading.breached:
                result["raised"] += bool(alert_raise(tenant=tenant, kind=check.key, details=reading.details, now=now))
            elif current is not None and reading.recovered:
                current.tenant = tenant
                result["cleared"] += alert_clear(alert=current, details=reading.details, now=now)
    return result
