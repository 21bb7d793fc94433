"""Sending email through the sandbox's SendGrid: payload, custom_args, suppression checks,
retries on 5xx, and 401/403 becoming a configuration error instead of a retry loop."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from sandbox.state import Fault
from tenants.audit import AuditContext
from tenants.models import AuditEvent
from tenants.schedules import schedules_install
from verify.email.sending import email_send, emails_release, provider_problem_current
from verify.email.suppressions import suppression_add
from verify.models import EmailMessage, EmailProviderProblem

pytestmark = pytest.mark.django_db

Status = EmailMessage.Status


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    """email_send with its after-commit enqueue run (the test's transaction never commits)."""

    def send(tenant, to="ana@example.com", **kwargs):
        fields = {"subject": "Your consent receipt", "text": "You agreed to texts.", "category": "consent_receipt"}
        with django_capture_on_commit_callbacks(execute=True):
            return email_send(tenant=tenant, to=to, **{**fields, **kwargs})

    return send


def refreshed(email):
    return EmailMessage.objects.for_tenant(email.tenant).get(pk=email.pk)


def test_send_reaches_sendgrid_with_tenant_and_email_id(send, tenant, sandbox, sandbox_settings, celery_eager):
    email = send(tenant, html="<p>You agreed to texts.</p>")
    email = refreshed(email)
    assert email.status == Status.SENT and email.sg_message_id and email.send_attempts == 1
    [mail] = sandbox.sendgrid_mails()
    payload = mail["payload"]
    assert payload["custom_args"] == {"tenant": str(tenant.pk), "email_id": str(email.pk)}
    assert payload["personalizations"][0]["to"] == [{"email": "ana@example.com"}]
    assert payload["subject"] == "Your consent receipt"
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert payload["from"]["name"] == tenant.name and payload["categories"] == ["consent_receipt"]
    assert mail["message_id"] == email.sg_message_id


def test_dynamic_template_sends_template_and_data_without_content(
    send, tenant, sandbox, sandbox_settings, celery_eager
):
    email = send(tenant, text="", template_id="d-0123456789abcdef", dynamic_data={"brand": "Acme"})
    assert refreshed(email).status == Status.SENT
    payload = sandbox.sendgrid_mails()[0]["payload"]
    assert payload["template_id"] == "d-0123456789abcdef" and "content" not in payload
    assert payload["personalizations"][0]["dynamic_template_data"] == {
        "subject": "Your consent receipt",
        "brand": "Acme",
    }


def test_suppressed_address_is_recorded_not_sent(send, tenant, sandbox, sandbox_settings, celery_eager):
    suppression_add(tenant=tenant, email="Ana@Example.com", reason="bounce")
    email = send(tenant, to="ana@example.com")
    assert email.status == Status.SUPPRESSED and "Bounced" in email.error
    assert sandbox.sendgrid_mails() == []


def test_group_suppression_blocks_only_that_group(send, tenant, sandbox, sandbox_settings, celery_eager):
    suppression_add(tenant=tenant, email="ana@example.com", reason="group_unsubscribe", asm_group_id=7)
    assert send(tenant, asm_group_id=7).status == Status.SUPPRESSED
    other_group = send(tenant, asm_group_id=8)
    assert refreshed(other_group).status == Status.SENT
    assert sandbox.sendgrid_mails()[0]["payload"]["asm"] == {"group_id": 8}


def test_suppression_of_another_tenant_does_not_block(
    send, tenant, other_tenant, sandbox, sandbox_settings, celery_eager
):
    suppression_add(tenant=other_tenant, email="ana@example.com", reason="spamreport")
    assert refreshed(send(tenant)).status == Status.SENT


def test_invalid_input_is_refused(send, tenant):
    with pytest.raises(ValidationError):
        send(tenant, to="not-an-address")
    with pytest.raises(ValidationError):
        send(tenant, category="newsletter")
    with pytest.raises(ValidationError):
        send(tenant, text="")
    assert not EmailMessage.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(("key_attr", "status"), [("wrong", 401), ("sendgrid_restricted_key", 403)])
def test_401_and_403_are_a_configuration_error_without_retries(
    send, tenant, sandbox, sandbox_settings, celery_eager, key_attr, status
):
    sandbox_settings.SENDGRID_API_KEY = "SG.wrong" if key_attr == "wrong" else getattr(sandbox, key_attr)
    email = refreshed(send(tenant))
    assert email.status == Status.FAILED and email.error_status == status
    assert email.send_attempts == 1  # tried once: no retry loop
    problem = provider_problem_current()
    assert problem is not None and problem.status_code == status
    second = refreshed(send(tenant, to="bo@example.com"))
    assert second.send_attempts == 1 and second.status == Status.FAILED
    assert EmailProviderProblem.objects.get().occurrences == 2  # one problem, refreshed
    # Fixed key: the next send succeeds and the problem clears.
    sandbox_settings.SENDGRID_API_KEY = sandbox.sendgrid_api_key
    assert refreshed(send(tenant, to="cy@example.com")).status == Status.SENT
    assert provider_problem_current() is None


def test_missing_api_key_is_a_configuration_error(send, tenant, sandbox, sandbox_settings, celery_eager):
    sandbox_settings.SENDGRID_API_KEY = ""
    email = refreshed(send(tenant))
    assert email.status == Status.FAILED and email.send_attempts == 0
    assert "SENDGRID_API_KEY" in provider_problem_current().message


def test_5xx_is_retried_then_sent(send, tenant, sandbox, sandbox_settings, celery_eager):
    sandbox.add_fault(Fault(mode="error", status=503, code=20503, count=2, path_contains="/v3/mail/send"))
    email = refreshed(send(tenant))
    assert email.status == Status.SENT and email.send_attempts == 3
    assert [f["status"] for f in sandbox._faults_injected] == [503, 503]
    assert provider_problem_current() is None


def test_5xx_beyond_the_retries_fails_the_email(send, tenant, sandbox, sandbox_settings, celery_eager):
    sandbox.add_fault(Fault(mode="error", status=500, code=20500, count=50, path_contains="/v3/mail/send"))
    email = refreshed(send(tenant))
    assert email.status == Status.FAILED and "Gave up after retries" in email.error
    assert email.send_attempts == 7  # the first try and MAX_RETRIES retries


def test_payload_sendgrid_refuses_fails_without_retry(
    send, tenant, sandbox, sandbox_settings, celery_eager, monkeypatch
):
    monkeypatch.setattr("django.conf.settings.DEFAULT_FROM_EMAIL", "no-at-sign")
    email = refreshed(send(tenant))
    assert email.status == Status.FAILED and email.error_status == 400 and "from" in email.error
    assert email.send_attempts == 1


def test_a_send_by_a_person_is_audited_with_the_address_masked(send, tenant, tenant_admin):
    email = send(tenant, audit=AuditContext(actor=tenant_admin, ip="203.0.113.9"), actor=tenant_admin)
    event = AuditEvent.objects.get(action="email.send")
    assert (event.tenant, event.actor, event.target, event.ip_address) == (
        tenant,
        tenant_admin,
        "a***@e***.com",
        "203.0.113.9",
    )
    assert event.details == {"email_id": email.pk, "category": "consent_receipt", "status": "queued"}
    assert email.requested_by == tenant_admin


def test_a_queued_email_whose_task_was_lost_is_released(tenant, sandbox, sandbox_settings, celery_eager):
    email = email_send(tenant=tenant, to="ana@example.com", subject="s", text="t", category="notice")  # never enqueued
    assert emails_release() == 0  # too fresh: its task may still be waiting on a backoff
    EmailMessage.objects.for_tenant(tenant).filter(pk=email.pk).update(updated_at=timezone.now() - timedelta(minutes=6))
    assert emails_release() == 1
    assert refreshed(email).status == Status.SENT
    assert emails_release(now=timezone.now() + timedelta(hours=1)) == 0  # sent: nothing left to release
    assert len(sandbox.sendgrid_mails()) == 1


def test_release_is_scheduled_every_minute():
    schedules_install()
    assert PeriodicTask.objects.get(task="verify.tasks.emails_release_task").interval.every == 60


def test_a_timeout_is_retried(send, tenant, sandbox, sandbox_settings, celery_eager):
    sandbox_settings.SENDGRID_HTTP_TIMEOUT = 0.5
    sandbox.add_fault(Fault(mode="stall", count=1, stall_seconds=2, path_contains="/v3/mail/send"))
    email = refreshed(send(tenant))
    assert email.status == Status.SENT and email.send_attempts == 2
    assert len(sandbox.sendgrid_mails()) == 1  # the stalled request was never acted on
