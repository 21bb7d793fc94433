"""Delivery alerts (tenants/alerts.py): raised once, emailed to the tenant's admins only, never
repeated while the condition lasts, cleared when it recovers, shown as a banner to every role."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging.models import Message
from tenants.alerts import alert_raise, alerts_check, signature_spike
from tenants.models import Alert, WebhookRejection
from tenants.schedules import PERIODIC_TASKS
from tenants.tasks import delivery_alerts_check
from tests.tenants.factories import UserFactory

pytestmark = pytest.mark.django_db

ADMIN_EMAIL = "alice@acme.example"


@pytest.fixture(autouse=True)
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def people(django_user_model, tenant, other_tenant, tenant_admin, viewer, other_admin):
    """Everyone has an email address; only acme's admins may get acme's alerts."""
    for user, email in (
        (tenant_admin, ADMIN_EMAIL),
        (viewer, "victor@acme.example"),
        (other_admin, "bob@globex.example"),
    ):
        user.email = email
        user.save()
    UserFactory(username="no-email-admin", tenant=tenant, role="admin")  # no address: skipped
    return {"admin": tenant_admin, "viewer": viewer, "other_admin": other_admin}


def finish(tenant, *, delivered=0, failed=0, at=None):
    """Outbound messages whose outcome arrived at `at` (default: 5 minutes ago)."""
    at = at or timezone.now() - timedelta(minutes=5)
    rows = [("delivered", None)] * delivered + [("undelivered", 30007)] * failed
    for i, (status, code) in enumerate(rows):
        Message.objects.create(
            tenant=tenant,
            direction="outbound",
            from_number="+15005550006",
            to_number=f"+1415555{i:04d}",
            status=status,
            error_code=code,
            status_updated_at=at,
        )


def open_alerts(tenant):
    return list(Alert.objects.for_tenant(tenant).filter(cleared_at__isnull=True))


def test_failure_rate_alert_raised_once_and_mailed_to_admins_only(people, tenant, other_tenant):
    finish(tenant, delivered=19, failed=2)  # 21 finished, 9.5% failed
    finish(other_tenant, delivered=100)

    assert alerts_check() == {"raised": 1, "cleared": 0}

    (alert,) = open_alerts(tenant)
    assert alert.kind == Alert.Kind.FAILURE_RATE
    assert (alert.details["finished"], alert.details["failed"]) == (21, 2)
    assert alert.details["rate"] == pytest.approx(2 / 21, abs=1e-4)
    assert open_alerts(other_tenant) == []
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == [ADMIN_EMAIL]
    assert "Acme" in email.subject and "failure rate" in email.subject.lower()
    assert "2 of 21" in email.body and f"/t/{tenant.slug}/" in email.body

    # Still failing five minutes later: no second alert, no second email.
    assert alerts_check() == {"raised": 0, "cleared": 0}
    assert delivery_alerts_check() == {"raised": 0, "cleared": 0}  # the beat task, same service
    assert Alert.objects.for_tenant(tenant).count() == 1
    assert len(mail.outbox) == 1


def test_recovery_clears_and_a_new_outage_raises_again(people, tenant):
    now = timezone.now()
    finish(tenant, delivered=18, failed=4, at=now - timedelta(minutes=2))
    alerts_check(now=now)
    (alert,) = open_alerts(tenant)

    # 20 minutes later the failures left the window and 40 messages were delivered.
    later = now + timedelta(minutes=20)
    finish(tenant, delivered=40, at=later - timedelta(minutes=3))
    assert alerts_check(now=later) == {"raised": 0, "cleared": 1}
    alert.refresh_from_db()
    assert alert.cleared_at == later
    assert alert.details["cleared"]["failed"] == 0
    assert open_alerts(tenant) == []
    assert len(mail.outbox) == 2 and "recovered" in mail.outbox[1].subject
    assert mail.outbox[1].to == [ADMIN_EMAIL]

    # A new outage is a new alert (the constraint only limits *open* alerts).
    again = later + timedelta(minutes=30)
    finish(tenant, delivered=10, failed=15, at=again - timedelta(minutes=1))
    assert alerts_check(now=again)["raised"] == 1
    assert Alert.objects.for_tenant(tenant).count() == 2


def test_clearing_needs_a_clearly_lower_rate(people, tenant):
    now = timezone.now()
    finish(tenant, delivered=18, failed=4, at=now - timedelta(minutes=2))
    alerts_check(now=now)
    later = now + timedelta(minutes=20)
    finish(tenant, delivered=48, failed=2, at=later - timedelta(minutes=2))  # 4%: below 5%, above 2.5%
    assert alerts_check(now=later) == {"raised": 0, "cleared": 0}
    assert len(open_alerts(tenant)) == 1


@pytest.mark.parametrize(
    ("delivered", "failed"),
    [
        (10, 9),  # 47% but only 19 messages
        (19, 1),  # 20 messages, exactly 5%: not above
        (0, 0),
    ],
)
def test_no_alert_below_thresholds(people, tenant, delivered, failed):
    finish(tenant, delivered=delivered, failed=failed)
    assert alerts_check() == {"raised": 0, "cleared": 0}
    assert open_alerts(tenant) == [] and mail.outbox == []


def test_failures_outside_the_window_do_not_count(people, tenant):
    finish(tenant, delivered=5, failed=30, at=timezone.now() - timedelta(minutes=16))
    assert alerts_check()["raised"] == 0


def test_only_one_open_alert_per_kind_in_the_database(tenant):
    now = timezone.now()
    Alert.objects.create(tenant=tenant, kind="failure_rate", raised_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(tenant=tenant, kind="failure_rate", raised_at=now)
    Alert.objects.create(tenant=tenant, kind="signature_failures", raised_at=now)  # other kind: fine
    # A racing check finds the open one and neither raises nor emails.
    assert alert_raise(tenant=tenant, kind="failure_rate", details={}) is None


def rejections(tenant, day, count):
    WebhookRejection.objects.create(
        tenant=tenant, reason="invalid_signature", day=day, count=count, last_seen_at=timezone.now()
    )


def test_signature_spike_definition():
    assert signature_spike(today=10, previous_days=[0] * 7)
    assert not signature_spike(today=9, previous_days=[0] * 7)  # below the floor of 10
    assert not signature_spike(today=15, previous_days=[5] * 7)  # 3x the average is not more
    assert signature_spike(today=16, previous_days=[5] * 7)
    assert signature_spike(today=40, previous_days=[70, 0, 0, 0, 0, 0, 0])  # average 10


def test_signature_failure_alert(people, tenant, other_tenant):
    now = timezone.now()
    today = now.date()
    for n in range(1, 8):
        rejections(tenant, today - timedelta(days=n), 2)  # a usual 2 a day
    rejections(tenant, today, 12)
    rejections(other_tenant, today, 9)
    # Another reason does not count.
    WebhookRejection.objects.create(
        tenant=other_tenant, reason="missing_signature", day=today, count=50, last_seen_at=now
    )

    assert alerts_check(now=now) == {"raised": 1, "cleared": 0}
    (alert,) = open_alerts(tenant)
    assert alert.kind == Alert.Kind.SIGNATURE_FAILURES
    assert (alert.details["today"], alert.details["baseline_average"]) == (12, 2.0)
    assert open_alerts(other_tenant) == []
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [ADMIN_EMAIL]
    assert "signature" in mail.outbox[0].subject.lower()

    WebhookRejection.objects.filter(tenant=tenant, day=today).update(count=30)
    assert alerts_check(now=now)["raised"] == 0 and len(mail.outbox) == 1

    # A new UTC day: today's counter starts again, the spike is over.
    assert alerts_check(now=now + timedelta(days=1)) == {"raised": 0, "cleared": 1}
    assert open_alerts(tenant) == []


def test_banner_on_tenant_pages_for_every_role(client, people, tenant, other_tenant, support_user):
    finish(tenant, delivered=10, failed=15)
    alerts_check()
    for user in (people["admin"], people["viewer"], support_user):
        client.force_login(user)
        for path in (f"/t/{tenant.slug}/", f"/t/{tenant.slug}/settings/", f"/t/{tenant.slug}/members/"):
            html = client.get(path).content.decode()
            assert 'data-alert-kind="failure_rate"' in html, (user.username, path)
            assert "15 of 25 outbound messages failed" in html

    client.force_login(people["other_admin"])
    assert 'data-alert-kind="' not in client.get(f"/t/{other_tenant.slug}/").content.decode()


def test_banner_goes_away_when_cleared(client, people, tenant):
    now = timezone.now()
    finish(tenant, delivered=10, failed=15, at=now - timedelta(minutes=1))
    alerts_check(now=now)
    alerts_check(now=now + timedelta(minutes=30))  # nothing finished since: cleared
    client.force_login(people["viewer"])
    assert 'data-alert-kind="' not in client.get(f"/t/{tenant.slug}/").content.decode()


def test_support_overview_shows_open_alerts(client, people, tenant, support_user):
    finish(tenant, delivered=10, failed=15)
    alerts_check()
    client.force_login(support_user)
    response = client.get("/support/")
    (row,) = [r for r in response.context["rows"] if r["tenant"] == tenant]
    assert [a.kind for a in row["alerts"]] == ["failure_rate"]
    assert "Delivery failure rate</span>" in response.content.decode()


def test_both_checks_are_scheduled_every_five_minutes():
    from django_celery_beat.models import PeriodicTask

    from tenants.schedules import schedules_install

    by_task = {job["task"]: job for job in PERIODIC_TASKS}
    for task in ("tenants.tasks.delivery_alerts_check", "tenants.tasks.twilio_reachability_check"):
        assert by_task[task]["every"] == timedelta(minutes=5)
    schedules_install()
    for task in ("tenants.tasks.delivery_alerts_check", "tenants.tasks.twilio_reachability_check"):
        assert PeriodicTask.objects.get(task=task).interval.every == 300
