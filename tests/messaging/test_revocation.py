"""Free-text revocations: the review queue, its 10-business-day deadline, confirm and dismiss."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from messaging.ledgers.reachability import number_is_opted_out
from messaging.ledgers.revocations import revocation_confirm, revocation_dismiss, revocation_open_list
from messaging.ledgers.selectors import consent_granted_purposes
from messaging.ledgers.services import consent_record, opt_out_record
from messaging.models import ConsentEvent, Message, OptOutEvent, RevocationReview
from tenants.audit import AuditContext
from tenants.http import audit_context
from tenants.models import AuditEvent
from tests.conftest import random_sid

INBOUND = "/webhooks/twilio/messaging/inbound/"
CUSTOMER = "+14155550100"
OUR_NUMBER = "+14155550199"
NEW_YORK = ZoneInfo("America/New_York")

pytestmark = pytest.mark.django_db


def post_inbound(twilio_webhook, tenant, body, *, phone=CUSTOMER, **extra):
    params = {
        "AccountSid": tenant.account_sid,
        "MessageSid": random_sid("SM"),
        "From": phone,
        "To": OUR_NUMBER,
        "Body": body,
        **extra,
    }
    return twilio_webhook.post(INBOUND, params, token=tenant.auth_token.reveal())


def reviews(tenant):
    return RevocationReview.objects.for_tenant(tenant)


def at(monkeypatch, moment: datetime) -> None:
    monkeypatch.setattr(timezone, "now", lambda: moment)


@pytest.fixture
def review(twilio_webhook, tenant):
    post_inbound(twilio_webhook, tenant, "please stop texting me")
    return reviews(tenant).get()


# --- the queue --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["please stop texting me", "remove me from this list", "wrong number", "no more messages", "Who is this? STOP"],
)
def test_free_text_revocation_is_queued_not_opted_out(twilio_webhook, tenant, body):
    tenant.keyword_replies = "portal"
    tenant.save()
    response = post_inbound(twilio_webhook, tenant, body)
    assert response.status_code == 200
    assert ET.fromstring(response.content).findall("Message") == []  # nothing to confirm yet
    item = reviews(tenant).get()
    message = Message.objects.for_tenant(tenant).get()
    assert item.status == "open"
    assert item.message_id == message.pk
    assert item.phone == CUSTOMER
    assert item.received_at == message.created_at
    assert message.is_evidence is False  # evidence only once confirmed
    assert message.keyword == ""
    assert not OptOutEvent.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("body", ["STOP", "hello", "Can you stop by at 5?", "HELP"])
def test_keywords_and_conversation_are_not_queued(twilio_webhook, tenant, body):
    post_inbound(twilio_webhook, tenant, body)
    assert not reviews(tenant).exists()


def test_already_opted_out_number_is_not_queued(twilio_webhook, tenant):
    opt_out_record(tenant=tenant, phone=CUSTOMER, source="keyword", keyword="STOP")
    post_inbound(twilio_webhook, tenant, "stop texting me!!")
    assert not reviews(tenant).exists()


def test_deadline_skips_thanksgiving_2026(twilio_webhook, tenant, monkeypatch):
    at(monkeypatch, datetime(2026, 11, 25, 15, 0, tzinfo=UTC))  # Wednesday, 10:00 in New York
    post_inbound(twilio_webhook, tenant, "please stop texting me")
    deadline = reviews(tenant).get().deadline_at.astimezone(NEW_YORK)
    # 10 business days, Thursday 26 November (Thanksgiving) not counted.
    assert deadline == datetime(2026, 12, 10, 10, 0, tzinfo=NEW_YORK)


def test_deadline_in_an_ordinary_week(twilio_webhook, tenant, monkeypatch):
    at(monkeypatch, datetime(2026, 11, 4, 15, 0, tzinfo=UTC))  # Wednesday, 10:00 in New York
    post_inbound(twilio_webhook, tenant, "please stop texting me")
    deadline = reviews(tenant).get().deadline_at.astimezone(NEW_YORK)
    assert deadline == datetime(2026, 11, 19, 10, 0, tzinfo=NEW_YORK)  # Veterans Day (11 Nov) skipped


def test_deadline_counts_from_the_tenants_local_day(twilio_webhook, tenant, monkeypatch):
    """22:30 on Wednesday in New York is Thursday (Thanksgiving) in UTC: still a Wednesday request."""
    at(monkeypatch, datetime(2026, 11, 26, 3, 30, tzinfo=UTC))
    post_inbound(twilio_webhook, tenant, "no more messages")
    deadline = reviews(tenant).get().deadline_at.astimezone(NEW_YORK)
    assert deadline == datetime(2026, 12, 10, 22, 30, tzinfo=NEW_YORK)


def test_deadline_uses_the_senders_country_calendar(twilio_webhook, tenant, monkeypatch):
    tenant.timezone = "Europe/Paris"
    tenant.save()
    paris = ZoneInfo("Europe/Paris")
    at(monkeypatch, datetime(2026, 5, 7, 10, 0, tzinfo=paris))
    post_inbound(twilio_webhook, tenant, "ne m'envoyez plus de messages", phone="+33612345678")
    # French holidays: 8 May (Victoire 1945), 14 May (Ascension), 25 May (Whit Monday).
    assert reviews(tenant).get().deadline_at.astimezone(paris) == datetime(2026, 5, 26, 10, 0, tzinfo=paris)


def test_open_list_is_scoped_and_most_urgent_first(twilio_webhook, tenant, other_tenant, monkeypatch):
    at(monkeypatch, datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    post_inbound(twilio_webhook, tenant, "remove me", phone="+14155551234")
    at(monkeypatch, datetime(2026, 11, 2, 15, 0, tzinfo=UTC))
    post_inbound(twilio_webhook, tenant, "wrong number")
    post_inbound(twilio_webhook, other_tenant, "wrong number")
    listed = list(revocation_open_list(tenant=tenant))
    assert [r.phone for r in listed] == [CUSTOMER, "+14155551234"]
    assert all(r.tenant_id == tenant.pk for r in listed)


# --- confirm ----------------------------------------------------------------------------------------


def test_confirm_opts_out_and_revokes_consent(tenant, tenant_admin, review):
    consent_record(tenant=tenant, phone=CUSTOMER, purpose="marketing", action="granted", method="web_form")
    event = revocation_confirm(tenant=tenant, review=review, audit=AuditContext.of(tenant_admin), note="Clear request")
    assert event.action == "opt_out" and event.source == "revocation_review"
    assert event.actor == tenant_admin
    assert event.phone == CUSTOMER and event.sender == OUR_NUMBER
    assert event.message_id == review.message_id
    assert "Clear request" in event.reason
    assert number_is_opted_out(tenant=tenant, phone=CUSTOMER)
    assert consent_granted_purposes(tenant=tenant, phone=CUSTOMER) == []
    assert ConsentEvent.objects.for_tenant(tenant).filter(opt_out_event=event, action="revoked").count() == 1

    stored = reviews(tenant).get()
    assert stored.status == review.status == "confirmed"
    assert stored.opt_out_event_id == event.pk
    assert stored.decided_by == tenant_admin and stored.decided_at is not None
    assert stored.decision_note == "Clear request"
    assert Message.objects.for_tenant(tenant).get(pk=review.message_id).is_evidence is True
    assert list(revocation_open_list(tenant=tenant)) == []

    audit = AuditEvent.objects.get(action="revocation.confirm")
    assert audit.tenant == tenant and audit.actor == tenant_admin
    assert audit.details["opt_out_event"] == event.pk
    assert CUSTOMER not in audit.target  # masked


def test_confirm_note_is_optional(tenant, tenant_admin, review):
    revocation_confirm(tenant=tenant, review=review, audit=AuditContext.of(tenant_admin))
    assert reviews(tenant).get().status == "confirmed"


def test_confirm_twice_refused(tenant, tenant_admin, review):
    revocation_confirm(tenant=tenant, review=review, audit=AuditContext.of(tenant_admin))
    stale = RevocationReview.objects.for_tenant(tenant).get()
    with pytest.raises(ValueError, match="already"):
        revocation_confirm(tenant=tenant, review=stale, audit=AuditContext.of(tenant_admin))
    assert OptOutEvent.objects.for_tenant(tenant).count() == 1
    assert AuditEvent.objects.filter(action="revocation.confirm").count() == 1


def test_confirm_records_the_request_ip(rf, tenant, tenant_admin, review):
    request = rf.post("/", REMOTE_ADDR="203.0.113.9")
    request.user = tenant_admin
    revocation_confirm(tenant=tenant, review=review, audit=audit_context(request))
    assert AuditEvent.objects.get(action="revocation.confirm").ip_address == "203.0.113.9"


# --- dismiss ----------------------------------------------------------------------------------------


def test_dismiss_keeps_the_number_reachable(tenant, tenant_admin, review):
    revocation_dismiss(
        tenant=tenant, review=review, audit=AuditContext.of(tenant_admin), note="Asked us to stop by the store"
    )
    stored = reviews(tenant).get()
    assert stored.status == review.status == "dismissed"
    assert stored.decided_by == tenant_admin and stored.decided_at is not None
    assert stored.decision_note == "Asked us to stop by the store"
    assert stored.opt_out_event is None
    assert not number_is_opted_out(tenant=tenant, phone=CUSTOMER)
    assert Message.objects.for_tenant(tenant).get(pk=review.message_id).is_evidence is False
    audit = AuditEvent.objects.get(action="revocation.dismiss")
    assert audit.tenant == tenant and audit.actor == tenant_admin
    assert audit.reason == "Asked us to stop by the store"


@pytest.mark.parametrize("note", ["", "   "])
def test_dismiss_needs_a_note(tenant, tenant_admin, review, note):
    with pytest.raises(ValueError):
        revocation_dismiss(tenant=tenant, review=review, audit=AuditContext.of(tenant_admin), note=note)
    assert reviews(tenant).get().status == "open"
    assert not AuditEvent.objects.filter(action="revocation.dismiss").exists()


def test_decided_review_cannot_be_decided_again(tenant, tenant_admin, review):
    revocation_dismiss(tenant=tenant, review=review, audit=AuditContext.of(tenant_admin), note="Not a revocation")
    with pytest.raises(ValueError, match="already"):
        revocation_confirm(tenant=tenant, review=review, audit=AuditContext.of(tenant_admin))
    with pytest.raises(ValueError, match="already"):
        revocation_dismiss(tenant=tenant, review=review, audit=AuditContext.of(tenant_admin), note="again")
    assert not OptOutEvent.objects.for_tenant(tenant).exists()


# --- tenant isolation --------------------------------------------------------------------------------


def test_other_tenant_cannot_confirm_or_dismiss(tenant, other_tenant, other_admin, review):
    with pytest.raises(ValueError, match="No such"):
        revocation_confirm(tenant=other_tenant, review=review, audit=AuditContext.of(other_admin))
    with pytest.raises(ValueError, match="No such"):
        revocation_dismiss(tenant=other_tenant, review=review, audit=AuditContext.of(other_admin), note="not mine")
    assert reviews(tenant).get().status == "open"
    assert not OptOutEvent.all_tenants.exists()
    assert not AuditEvent.objects.filter(action__startswith="revocation.").exists()
