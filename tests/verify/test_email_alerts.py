"""Alerts to a tenant's admins go out through SendGrid once it is configured
(`tenants.registry.alert_notifiers`, filled by verify); Django's mail backend otherwise."""

from __future__ import annotations

import pytest
from django.core import mail

from tenants.alerts import alert_raise
from tenants.registry import alert_notifiers
from verify.email.suppressions import suppression_add
from verify.models import EmailMessage

pytestmark = pytest.mark.django_db


@pytest.fixture
def admins(tenant, tenant_admin, viewer):
    tenant_admin.email = "alice@acme.example"
    tenant_admin.save()
    viewer.email = "victor@acme.example"
    viewer.save()
    return tenant_admin


def test_verify_registers_its_notifier():
    assert "verify.sendgrid" in alert_notifiers


def test_alert_is_emailed_through_sendgrid(
    tenant, admins, sandbox, sandbox_settings, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        alert_raise(tenant=tenant, kind="failure_rate", details={"rate": 0.5, "failed": 5, "finished": 10})
    email = EmailMessage.objects.for_tenant(tenant).get()
    assert (email.to_email, email.category, email.status) == ("alice@acme.example", "alert", "sent")
    assert email.subject.startswith(f"[commsportal] {tenant.name}: ")
    assert mail.outbox == []
    [sent] = sandbox.sendgrid_mails()
    assert sent["payload"]["custom_args"]["tenant"] == str(tenant.pk)


def test_a_suppressed_admin_gets_no_alert(tenant, admins, sandbox, sandbox_settings, celery_eager):
    suppression_add(tenant=tenant, email="alice@acme.example", reason="bounce")
    alert_raise(tenant=tenant, kind="failure_rate", details={"rate": 0.5, "failed": 5, "finished": 10})
    assert EmailMessage.objects.for_tenant(tenant).get().status == "suppressed"
    assert mail.outbox == []


def test_without_sendgrid_alerts_use_djangos_mail(tenant, admins, settings):
    settings.SENDGRID_API_KEY = ""
    alert_raise(tenant=tenant, kind="failure_rate", details={"rate": 0.5, "failed": 5, "finished": 10})
    assert [m.to for m in mail.outbox] == [["alice@acme.example"]]
    assert not EmailMessage.objects.for_tenant(tenant).exists()
