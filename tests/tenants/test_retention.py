"""Retention: bodies and media of old messages are purged in batches, metadata stays; evidence,
legal holds, pending sends and the consent/opt-out ledgers are never touched; optional
redaction at Twilio; the daily task and its schedule; the operator's retention settings."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from messaging.ledgers.services import consent_record, opt_out_record
from messaging.models import ConsentEvent, Message, OptOutEvent
from sandbox.state import Fault
from tenants import retention, tasks
from tenants.models import AuditEvent, Tenant
from tenants.schedules import PERIODIC_TASKS
from tenants.twilio import tenant_client
from tests.conftest import random_sid
from tests.messaging.factories import RevocationReviewFactory
from tests.tenants.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

CUSTOMER = "+14155550100"
OUR_NUMBER = "+14155550199"
MEDIA = [{"url": "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME", "content_type": "image/jpeg"}]


def message(tenant, *, age_days: float, body="Hello there", media=None, **fields) -> Message:
    defaults = {
        "direction": "inbound",
        "from_number": CUSTOMER,
        "to_number": OUR_NUMBER,
        "status": "received",
        "sid": random_sid("SM"),
        "num_segments": 1,
    }
    defaults.update(fields)
    row = Message.objects.create(tenant=tenant, body=body, media=media or [], num_media=len(media or []), **defaults)
    Message.all_tenants.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=age_days))
    return Message.all_tenants.get(pk=row.pk)


def reload(row):
    return type(row).all_tenants.get(pk=row.pk)


def test_old_bodies_and_media_are_purged_metadata_kept(tenant):
    old = message(tenant, age_days=401, media=MEDIA, error_code=None)
    recent = message(tenant, age_days=399)
    report = retention.retention_purge_tenant(tenant=tenant)
    assert report.purged == 1 and report.batches == 1
    purged = reload(old)
    assert purged.body == "" and purged.media == [] and purged.body_purged_at is not None
    # Metadata stays: who, when, status, sid, segments, media count.
    assert (purged.from_number, purged.to_number, purged.status, purged.sid, purged.num_segments) == (
        CUSTOMER,
        OUR_NUMBER,
        "received",
        old.sid,
        1,
    )
    assert purged.num_media == 1 and purged.created_at == old.created_at
    assert reload(recent).body == "Hello there" and reload(recent).body_purged_at is None


def test_evidence_open_reviews_and_pending_sends_keep_their_bodies(tenant):
    evidence = message(tenant, age_days=900, body="STOP", keyword="opt_out", is_evidence=True)
    help_keyword = message(tenant, age_days=900, body="HELP", keyword="help")
    pending = message(tenant, age_days=900, body="queued promo", direction="outbound", status="pending", sid=None)
    under_review = message(tenant, age_days=900, body="please stop texting me")
    RevocationReviewFactory(
        tenant=tenant,
        message=under_review,
        phone=CUSTOMER,
        received_at=under_review.created_at,
        deadline_at=timezone.now() + timedelta(days=3),
    )
    report = retention.retention_purge_tenant(tenant=tenant)
    assert report.purged == 1
    assert reload(evidence).body == "STOP" and reload(evidence).body_purged_at is None
    assert reload(help_keyword).body == ""  # a HELP changed no state: not evidence
    assert reload(pending).body == "queued promo"
    assert reload(under_review).body == "please stop texting me"


def test_legal_hold_purges_nothing(tenant, caplog):
    caplog.set_level(logging.INFO, logger="commsportal.retention")
    Tenant.objects.filter(pk=tenant.pk).update(legal_hold=True)
    tenant.refresh_from_db()
    old = message(tenant, age_days=2000)
    report = retention.retention_purge_tenant(tenant=tenant)
    assert report.legal_hold and report.purged == 0
    assert reload(old).body == "Hello there"
    assert not AuditEvent.objects.filter(action="retention.purge").exists()
    assert "legal hold" in caplog.text


def test_a_legal_hold_placed_during_a_run_stops_it(tenant):
    old = message(tenant, age_days=2000)
    Tenant.objects.filter(pk=tenant.pk).update(legal_hold=True)  # `tenant` in memory still says no hold
    report = retention.retention_purge_tenant(tenant=tenant)
    assert report.legal_hold and report.purged == 0 and reload(old).body == "Hello there"


def test_consent_and_opt_out_ledgers_are_untouched(tenant):
    consent = consent_record(
        tenant=tenant,
        phone=CUSTOMER,
        purpose="marketing",
        action="granted",
        method="web_form",
        source="https://acme.example/join",
        disclosure_text="Acme offers, 4 msgs/month. Reply STOP to cancel.",
        ip_address="203.0.113.9",
        user_agent="Mozilla/5.0",
        captured_at=timezone.now() - timedelta(days=2000),
    )
    opt_out = opt_out_record(tenant=tenant, phone=CUSTOMER, source="keyword", keyword="STOP")
    OptOutEvent.all_tenants.filter(pk=opt_out.pk).update(created_at=timezone.now() - timedelta(days=2000))
    ConsentEvent.all_tenants.filter(pk=consent.pk).update(created_at=timezone.now() - timedelta(days=2000))

    def snapshot():
        return (
            list(OptOutEvent.all_tenants.order_by("pk").values()),
            list(ConsentEvent.all_tenants.order_by("pk").values()),
        )

    before = snapshot()
    message(tenant, age_days=2000)
    retention.retention_purge_all()
    assert snapshot() == before


def test_purges_run_in_batches_and_report(tenant, caplog):
    caplog.set_level(logging.INFO, logger="commsportal.retention")
    rows = [message(tenant, age_days=500 + i) for i in range(5)]
    report = retention.retention_purge_tenant(tenant=tenant, batch_size=2)
    assert (report.purged, report.batches) == (5, 3)
    assert all(reload(r).body == "" for r in rows)
    event = AuditEvent.objects.get(tenant=tenant, action="retention.purge")
    assert event.actor is None and event.actor_label == "system"
    assert event.details["purged"] == 5 and event.details["batches"] == 3 and event.details["retention_days"] == 400
    assert f"retention.purge tenant={tenant.slug} purged=5 batches=3" in caplog.text
    # A second run finds nothing and writes no audit event.
    assert retention.retention_purge_tenant(tenant=tenant, batch_size=2).purged == 0
    assert AuditEvent.objects.filter(action="retention.purge").count() == 1


def test_a_run_out_of_time_resumes_next_time(tenant):
    rows = [message(tenant, age_days=500) for _ in range(3)]
    first = retention.retention_purge_tenant(tenant=tenant, batch_size=1, deadline=0)  # already past
    assert first.incomplete and first.purged == 0
    second = retention.retention_purge_tenant(tenant=tenant, batch_size=1)
    assert second.purged == 3 and all(reload(r).body == "" for r in rows)


def test_each_tenant_has_its_own_period_and_all_are_purged(tenant, other_tenant):
    Tenant.objects.filter(pk=other_tenant.pk).update(retention_days=30)
    a_old, a_mid = message(tenant, age_days=450), message(tenant, age_days=60)
    b_mid = message(other_tenant, age_days=60)
    totals = tasks.retention_purge()  # the beat task itself
    assert totals["tenants"] == 2 and totals["purged"] == 2 and not totals["incomplete"]
    assert reload(a_old).body == "" and reload(a_mid).body == "Hello there" and reload(b_mid).body == ""
    assert AuditEvent.objects.filter(action="retention.purge").count() == 2


def test_one_failing_tenant_does_not_stop_the_others(tenant, other_tenant, monkeypatch):
    real = retention.retention_purge_tenant

    def flaky(*, tenant, **kwargs):
        if tenant.slug == "acme":
            raise RuntimeError("boom")
        return real(tenant=tenant, **kwargs)

    monkeypatch.setattr(retention, "retention_purge_tenant", flaky)
    row = message(other_tenant, age_days=500)
    totals = retention.retention_purge_all()
    assert totals["failed"] == 1 and totals["purged"] == 1 and reload(row).body == ""


def test_the_purge_is_scheduled_daily():
    job = next(j for j in PERIODIC_TASKS if j["task"] == "tenants.tasks.retention_purge")
    assert job["every"] == timedelta(days=1)


def test_redaction_at_twilio(sandbox_settings, sandbox, caplog):
    caplog.set_level(logging.WARNING, logger="commsportal.retention")
    parent = sandbox.register_account(random_sid("AC"))
    tenant = TenantFactory(slug="acme", account_sid=parent.sid, auth_token=parent.auth_token, redact_at_twilio=True)
    sender = sandbox.seed_number(tenant.account_sid, "+14152300001")["phone_number"]
    client = tenant_client(tenant)
    sent = [client.messages.create(to=CUSTOMER, from_=sender, body=f"secret {i}") for i in range(3)]
    rows = [
        message(tenant, age_days=500, body=f"secret {i}", direction="outbound", status="delivered", sid=m.sid)
        for i, m in enumerate(sent)
    ]
    gone = message(tenant, age_days=500, sid=random_sid("SM"))  # Twilio already deleted it: 404
    sandbox.add_fault(Fault(path_contains=f"/Messages/{sent[2].sid}.json", method="POST", status=500, code=20500))

    report = retention.retention_purge_tenant(tenant=tenant)
    assert report.purged == 4 and report.twilio_redacted == 3 and report.twilio_failed == 1
    at_twilio = {m["sid"]: m["body"] for m in sandbox.messages()}
    assert at_twilio[sent[0].sid] == "" and at_twilio[sent[1].sid] == ""
    assert at_twilio[sent[2].sid] == "secret 2"  # the failure is logged, not fatal
    assert all(reload(r).body == "" for r in [*rows, gone])
    assert f"sid={sent[2].sid}" in caplog.text and "secret" not in caplog.text
    assert AuditEvent.objects.get(action="retention.purge").details["twilio_failed"] == 1


def test_operator_sets_retention_and_legal_hold(client, django_user_model, tenant, tenant_admin):
    operator = UserFactory(username="olga-operator", superuser=True)
    client.force_login(operator)
    url = reverse("operator:retention_update", kwargs={"slug": tenant.slug})
    response = client.post(url, {"retention_days": "90", "legal_hold": "on"}, follow=True)
    assert b"Saved: retention_days, legal_hold." in response.content
    tenant.refresh_from_db()
    assert (tenant.retention_days, tenant.legal_hold, tenant.redact_at_twilio) == (90, True, False)
    event = AuditEvent.objects.get(tenant=tenant, action="retention.settings_update")
    assert event.details == {
        "before": {"retention_days": 400, "legal_hold": False},
        "after": {"retention_days": 90, "legal_hold": True},
    }
    assert event.actor == operator

    client.post(url, {"retention_days": "0"})
    tenant.refresh_from_db()
    assert tenant.retention_days == 90  # refused: at least one day

    client.force_login(tenant_admin)
    assert client.post(url, {"retention_days": "1"}).status_code == 403
    tenant.refresh_from_db()
    assert tenant.retention_days == 90
