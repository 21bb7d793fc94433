"""Delivery alerts: raise one when a tenant's traffic goes wrong, clear it when it recovers.

`alerts_check` runs every five minutes (`tenants.tasks.delivery_alerts_check`) over every
tenant at once, in a few grouped queries. Two kinds:

* **failure_rate** — raised when, over the last 15 minutes, at least 20 outbound messages
  finished (delivered + undelivered + failed, by the time their outcome arrived) and more than
  5% of them were undelivered or failed (`messaging.monitoring`). Cleared when the rate over the
  last 15 minutes is at most 2.5% (half the threshold, so a rate hovering around 5% does not
  raise, clear and raise again every few minutes) or nothing finished in the window.
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

logger = logging.getLogger("commsportal.alerts")

FAILURE_WINDOW = timedelta(minutes=15)
FAILURE_MIN_MESSAGES = 20
FAILURE_RATE_THRESHOLD = 0.05
FAILURE_CLEAR_RATE = 0.025
SIGNATURE_MIN_TODAY = 10
SIGNATURE_SPIKE_FACTOR = 3
SIGNATURE_BASELINE_DAYS = 7


def failure_rate_breached(*, delivered: int, failed: int) -> bool:
    finished = delivered + failed
    return finished >= FAILURE_MIN_MESSAGES and failed / finished > FAILURE_RATE_THRESHOLD


def failure_rate_recovered(*, delivered: int, failed: int) -> bool:
    finished = delivered + failed
    return finished == 0 or failed / finished <= FAILURE_CLEAR_RATE


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
    try:
        return send_mail(f"[commsportal] {tenant.name}: {subject}", body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:  # noqa: BLE001 - SMTP trouble must not block the other tenants' checks
        logger.exception("alerts.email_failed", extra={"tenant": tenant.slug})
        return 0


_ADVICE = {
    Alert.Kind.FAILURE_RATE: (
        "Open the dashboard for the top error codes and what they mean. A sudden rise usually is "
        "carrier filtering (30007), an unregistered 10DLC number (30034) or a bad contact list."
    ),
    Alert.Kind.SIGNATURE_FAILURES: (
        "Twilio webhooks are being rejected because their signature does not match the tenant's "
        "auth token: was the token rotated at Twilio but not in the portal? If not, someone may be "
        "sending forged requests. Status callbacks and inbound messages are lost while this lasts."
    ),
}


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
        lines=[alert.summary, _ADVICE[kind], "You will get one more email when it recovers; not one every check."],
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


def alerts_check(*, now: datetime | None = None) -> dict[str, int]:
    """Raise and clear every tenant's alerts (see the module docstring); returns counts."""
    from messaging.monitoring import outcomes_by_tenant  # messaging depends on tenants, not back

    now = now or timezone.now()
    today = now.date()
    outcomes = outcomes_by_tenant(since=now - FAILURE_WINDOW, until=now)

    signature_counts: dict[int, dict] = defaultdict(dict)
    for tenant_id, day, count in WebhookRejection.objects.filter(
        tenant__isnull=False,
        reason=WebhookRejection.Reason.INVALID_SIGNATURE,
        day__gte=today - timedelta(days=SIGNATURE_BASELINE_DAYS),
        day__lte=today,
    ).values_list("tenant_id", "day", "count"):
        signature_counts[tenant_id][day] = count

    open_alerts = {(a.tenant_id, a.kind): a for a in Alert.all_tenants.filter(cleared_at__isnull=True)}
    tenant_ids = set(outcomes) | set(signature_counts) | {tenant_id for tenant_id, _ in open_alerts}
    tenants = Tenant.objects.in_bulk(tenant_ids)
    result = {"raised": 0, "cleared": 0}

    for tenant_id, tenant in tenants.items():
        o = outcomes.get(tenant_id)
        delivered, failed = (o.delivered, o.failed) if o else (0, 0)
        numbers = {
            "window_minutes": int(FAILURE_WINDOW.total_seconds() // 60),
            "finished": delivered + failed,
            "failed": failed,
            "rate": round(failed / (delivered + failed), 4) if delivered + failed else 0.0,
            "threshold": FAILURE_RATE_THRESHOLD,
            "checked_at": now.isoformat(),
        }
        current = open_alerts.get((tenant_id, Alert.Kind.FAILURE_RATE))
        if current is None and failure_rate_breached(delivered=delivered, failed=failed):
            result["raised"] += bool(alert_raise(tenant=tenant, kind=Alert.Kind.FAILURE_RATE, details=numbers, now=now))
        elif current is not None and failure_rate_recovered(delivered=delivered, failed=failed):
            current.tenant = tenant
            result["cleared"] += alert_clear(alert=current, details=numbers, now=now)

        days = signature_counts.get(tenant_id, {})
        previous = [days.get(today - timedelta(days=n), 0) for n in range(1, SIGNATURE_BASELINE_DAYS + 1)]
        spike = signature_spike(today=days.get(today, 0), previous_days=previous)
        numbers = {
            "day": today.isoformat(),
            "today": days.get(today, 0),
            "baseline_average": round(sum(previous) / SIGNATURE_BASELINE_DAYS, 2),
            "factor": SIGNATURE_SPIKE_FACTOR,
            "minimum": SIGNATURE_MIN_TODAY,
            "checked_at": now.isoformat(),
        }
        current = open_alerts.get((tenant_id, Alert.Kind.SIGNATURE_FAILURES))
        if current is None and spike:
            result["raised"] += bool(
                alert_raise(tenant=tenant, kind=Alert.Kind.SIGNATURE_FAILURES, details=numbers, now=now)
            )
        elif current is not None and not spike:
            current.tenant = tenant
            result["cleared"] += alert_clear(alert=current, details=numbers, now=now)
    return result
