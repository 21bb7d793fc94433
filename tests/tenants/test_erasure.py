"""GDPR erasure of one number: no trace of it left in any table (searched in the raw database),
while the number stays suppressed; scoped to one tenant; audited; the operator page and the
management command."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from messaging.ledgers.reachability import number_is_opted_out, numbers_opted_out
from messaging.ledgers.selectors import opt_out_latest
from messaging.ledgers.services import consent_record, opt_out_record
from messaging.models import (
    BulkSend,
    ConsentEvent,
    Message,
    MessageEvent,
    OptOutEvent,
)
from tenants.audit import AuditContext
from tenants.models import AuditEvent, SuppressionHash, SuppressionKey
from tenants.retention import number_erase, phone_is_suppressed, suppressed_phones
from tenants.services import audit_record
from tenants.twilio import tenant_client
from tests.conftest import random_sid
from tests.messaging.factories import BulkSendFactory, MessageTemplateFactory, RevocationReviewFactory
from tests.tenants.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

PERSON = "+14155550142"
DIGITS = "4155550142"  # what must not survive anywhere, in any format
NEIGHBOUR = "+14155550177"
OUR_NUMBER = "+14155550199"


@pytest.fixture
def operator(django_user_model):
    return UserFactory(username="olga-operator", superuser=True)


def seed_person(tenant, phone=PERSON, *, actor=None):
    """Everything the portal stores about a number, the way the services store it."""
    stop = Message.objects.create(
        tenant=tenant,
        direction="inbound",
        sid=random_sid("SM"),
        from_number=phone,
        to_number=OUR_NUMBER,
        body="STOP",
        keyword="opt_out",
        is_evidence=True,
        status="received",
    )
    MessageEvent.objects.create(
        tenant=tenant,
        message=stop,
        status="received",
        occurred_at=timezone.now(),
        payload={"From": phone, "To": OUR_NUMBER, "FromCity": "SAN FRANCISCO", "FromZip": "94103", "Body": "x"},
    )
    outbound = Message.objects.create(
        tenant=tenant,
        direction="outbound",
        sid=random_sid("SM"),
        from_number=OUR_NUMBER,
        to_number=f"whatsapp:{phone}",
        body="Your appointment is at 3pm, call (415) 555-0142 to move it",
        media=[{"url": "https://example.test/me.jpg", "content_type": "image/jpeg"}],
        status="undelivered",
        failure_reason=f"The 'To' number {phone} is not reachable.",
    )
    MessageEvent.objects.create(
        tenant=tenant,
        message=outbound,
        status="undelivered",
        occurred_at=timezone.now(),
        payload={"To": f"whatsapp:{phone}", "From": OUR_NUMBER, "ErrorCode": "30003"},
    )
    review_msg = Message.objects.create(
        tenant=tenant,
        direction="inbound",
        sid=random_sid("SM"),
        from_number=phone,
        to_number=OUR_NUMBER,
        body="please don't text me anymore",
        status="received",
    )
    RevocationReviewFactory(
        tenant=tenant,
        message=review_msg,
        phone=phone,
        received_at=timezone.now(),
        deadline_at=timezone.now() + timedelta(days=14),
        decision_note=f"called back on 415-555-0142; {phone} confirmed",
    )
    consent_record(
        tenant=tenant,
        phone=phone,
        purpose="marketing",
        action="granted",
        method="web_form",
        source=f"https://acme.example/join?phone={phone}",
        disclosure_text="Acme offers, 4 msgs/month. Reply STOP to cancel.",
        ip_address="203.0.113.9",
        user_agent="Mozilla/5.0 (iPhone)",
        note=f"signed up at the desk as {phone}",
    )
    opt_out_record(tenant=tenant, phone=phone, source="keyword", keyword="STOP", message=stop)
    audit_record(
        action="opt_out.add", tenant=tenant, audit=AuditContext.of(actor), target=phone, reason=f"asked by {phone}"
    )
    audit_record(
        action="consent.capture", tenant=tenant, audit=AuditContext.of(actor), target=phone, details={"phone": phone}
    )
    template = MessageTemplateFactory(
        tenant=tenant, name=f"promo {phone[-2:]}", purpose="marketing", body="Hi {{name}}"
    )
    BulkSendFactory(
        tenant=tenant,
        name="Spring promo",
        template=template,
        purpose="marketing",
        upload={
            "body": "Hi {{name}}",
            "variables": ["name"],
            "recipients": [[phone, ["Ann"]], [NEIGHBOUR, ["Bob"]]],
            "errors": [{"line": 7, "value": "415 555 0142x", "message": "not a number"}],
        },
    )


def raw_rows_containing(needle: str) -> list[tuple[str, str]]:
    """Every (table, row) of the raw database whose text contains `needle`."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = " ".join(str(v) for v in row)
                if needle in text:
                    found.append((table, text[:200]))
    return found


def test_erasure_leaves_no_trace_of_the_number_but_keeps_it_suppressed(tenant, operator):
    seed_person(tenant, actor=operator)
    seed_person(tenant, NEIGHBOUR)  # someone else, untouched
    assert raw_rows_containing(DIGITS)  # the search does find the number before

    result = number_erase(tenant=tenant, phone=PERSON, audit=AuditContext.of(operator), reason="GDPR request #1042")

    assert raw_rows_containing(DIGITS) == []
    assert phone_is_suppressed(tenant=tenant, phone=PERSON)
    assert not phone_is_suppressed(tenant=tenant, phone=NEIGHBOUR)
    assert suppressed_phones(tenant=tenant, phones=[PERSON, NEIGHBOUR, "+14155550100"]) == {PERSON}
    assert result.marker.startswith("erased:") and len(result.marker) == len("erased:") + 16
    counts = result.counts
    assert (counts["messages"], counts["opt_out_events"], counts["consent_events"], counts["revocation_reviews"]) == (
        3,
        1,
        2,
        1,
    )
    # Both drafts: the neighbour's lists a row error quoting the number ("415 555 0142x").
    assert counts["bulk_drafts"] == 2 and counts["audit_events"] == 2 and not counts["opt_out_recorded"]

    # The rows stay, pseudonymised: the ledgers still show that (and when) an opt-out happened.
    stop = Message.objects.for_tenant(tenant).get(keyword="opt_out", from_number=result.marker)
    assert stop.body == "" and stop.body_purged_at is not None and stop.to_number == OUR_NUMBER
    opt_out = OptOutEvent.objects.for_tenant(tenant).get(phone=result.marker)
    assert opt_out.action == "opt_out" and opt_out.keyword == "STOP" and opt_out.message == stop
    consents = ConsentEvent.objects.for_tenant(tenant).filter(phone=result.marker).order_by("id")
    assert [c.action for c in consents] == ["granted", "revoked"]
    assert all(c.ip_address is None and c.user_agent == "[erased]" for c in consents)
    assert consents[0].disclosure is not None  # what was shown is not personal data: kept
    event = MessageEvent.objects.for_tenant(tenant).get(message=stop)
    assert event.payload == {"From": result.marker, "To": OUR_NUMBER, "Body": "x"}  # geography dropped
    person_draft, neighbour_draft = BulkSend.objects.for_tenant(tenant).order_by("id")
    assert person_draft.upload["recipients"] == [[NEIGHBOUR, ["Bob"]]]
    assert neighbour_draft.upload["errors"][0]["value"] == f"{result.marker}x"

    # The neighbour's data is intact.
    assert Message.objects.for_tenant(tenant).filter(from_number=NEIGHBOUR).count() == 2
    assert number_is_opted_out(tenant=tenant, phone=NEIGHBOUR)
    assert ConsentEvent.objects.for_tenant(tenant).get(phone=NEIGHBOUR, action="granted").ip_address == "203.0.113.9"

    erase = AuditEvent.objects.get(tenant=tenant, action="gdpr.erase")
    assert erase.target == result.marker and erase.reason == "GDPR request #1042" and erase.actor == operator
    assert erase.details["messages"] == 3


def test_erasure_is_scoped_to_one_tenant(tenant, other_tenant, operator):
    seed_person(tenant)
    seed_person(other_tenant)
    number_erase(tenant=tenant, phone=PERSON, audit=AuditContext.of(operator), reason="request")
    assert phone_is_suppressed(tenant=tenant, phone=PERSON)
    assert not phone_is_suppressed(tenant=other_tenant, phone=PERSON)
    assert Message.objects.for_tenant(other_tenant).filter(from_number=PERSON).count() == 2
    assert OptOutEvent.objects.for_tenant(other_tenant).filter(phone=PERSON).exists()
    assert not Message.objects.for_tenant(tenant).filter(from_number=PERSON).exists()


def test_erasing_a_number_never_opted_out_records_the_opt_out(tenant, operator):
    Message.objects.create(
        tenant=tenant, direction="inbound", from_number=PERSON, to_number=OUR_NUMBER, body="hi", status="received"
    )
    result = number_erase(
        tenant=tenant, phone="(415) 555-0142", audit=AuditContext.of(operator), reason="request"
    )  # any format
    assert result.counts["opt_out_recorded"]
    event = OptOutEvent.objects.for_tenant(tenant).get(phone=result.marker)
    assert event.action == "opt_out" and event.source == "admin" and event.reason == "GDPR erasure"
    assert phone_is_suppressed(tenant=tenant, phone=PERSON)
    assert raw_rows_containing(DIGITS) == []


def test_erasure_is_idempotent_and_marker_stable(tenant, operator):
    seed_person(tenant)
    first = number_erase(tenant=tenant, phone=PERSON, audit=AuditContext.of(operator), reason="request")
    second = number_erase(tenant=tenant, phone=PERSON, audit=AuditContext.of(operator), reason="request again")
    assert first.marker == second.marker and second.counts["messages"] == 0
    assert SuppressionHash.objects.for_tenant(tenant).count() == 1
    assert AuditEvent.objects.filter(action="gdpr.erase").count() == 2


def test_the_suppression_key_survives_secret_key_rotation_and_is_stored_encrypted(tenant, operator, settings):
    number_erase(tenant=tenant, phone=PERSON, audit=AuditContext.of(operator), reason="request")
    key = SuppressionKey.objects.get(tenant=tenant).key.reveal()
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM tenants_suppressionkey")
        (stored,) = cursor.fetchone()
    assert key not in stored and stored.startswith("gAAAA")  # a Fernet token
    settings.SECRET_KEY = "a-rotated-secret-key"
    assert phone_is_suppressed(tenant=tenant, phone=PERSON)


def test_no_erasure_means_no_query_cost_beyond_one_lookup(tenant, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert not phone_is_suppressed(tenant=tenant, phone=PERSON)


def test_bulk_lookup_takes_constant_queries(tenant, operator, django_assert_num_queries):
    number_erase(tenant=tenant, phone=PERSON, audit=AuditContext.of(operator), reason="request")
    many = [f"+1415555{i:04d}" for i in range(2000)]
    with django_assert_num_queries(2):  # the key, then the tenant's (short) suppression list
        assert suppressed_phones(tenant=tenant, phones=many) == {PERSON}


def test_erasure_needs_a_reason(tenant, operator):
    with pytest.raises(ValueError):
        number_erase(tenant=tenant, phone=PERSON, audit=AuditContext.of(operator), reason="  ")
    assert not SuppressionHash.objects.for_tenant(tenant).exists()


# --- operator page and command ----------------------------------------------------------------------


def test_operator_erasure_page(client, tenant, operator):
    seed_person(tenant)
    url = reverse("operator:number_erase", kwargs={"slug": tenant.slug})
    client.force_login(operator)
    assert client.get(url).status_code == 200

    mismatch = client.post(url, {"phone": PERSON, "phone_again": NEIGHBOUR, "reason": "req"})
    assert mismatch.status_code == 200 and b"The two numbers differ" in mismatch.content
    no_reason = client.post(url, {"phone": PERSON, "phone_again": PERSON, "reason": ""})
    assert no_reason.status_code == 200
    assert not SuppressionHash.objects.for_tenant(tenant).exists()

    response = client.post(url, {"phone": PERSON, "phone_again": "415-555-0142", "reason": "GDPR #7"}, follow=True)
    assert response.status_code == 200 and b"Erased as erased:" in response.content
    assert DIGITS.encode() not in response.content
    assert phone_is_suppressed(tenant=tenant, phone=PERSON)
    event = AuditEvent.objects.get(action="gdpr.erase")
    assert event.actor == operator and event.ip_address == "127.0.0.1" and event.reason == "GDPR #7"


def test_erasure_page_is_for_operators_only(client, tenant, tenant_admin, support_user):
    seed_person(tenant)
    url = reverse("operator:number_erase", kwargs={"slug": tenant.slug})
    for user in (tenant_admin, support_user):
        client.force_login(user)
        assert client.get(url).status_code == 403
        assert client.post(url, {"phone": PERSON, "phone_again": PERSON, "reason": "x"}).status_code == 403
    assert not phone_is_suppressed(tenant=tenant, phone=PERSON)
    assert not AuditEvent.objects.filter(action="gdpr.erase").exists()


def test_erase_number_command(tenant, operator):
    seed_person(tenant)
    out = io.StringIO()
    call_command(
        "erase_number", tenant.slug, PERSON, "--reason", "ticket 9", "--actor", operator.username, "--yes", stdout=out
    )
    assert "Erased as erased:" in out.getvalue() and DIGITS not in out.getvalue()
    assert phone_is_suppressed(tenant=tenant, phone=PERSON)
    assert AuditEvent.objects.get(action="gdpr.erase").actor == operator


def test_erasure_can_redact_the_bodies_at_twilio(sandbox_settings, sandbox, operator):
    account = sandbox.register_account(random_sid("AC"))
    tenant = TenantFactory(slug="acme", account_sid=account.sid, auth_token=account.auth_token)
    sender = sandbox.seed_number(tenant.account_sid, "+14152300001")["phone_number"]
    sent = tenant_client(tenant).messages.create(to=PERSON, from_=sender, body="your secret code")
    Message.objects.create(
        tenant=tenant, direction="outbound", sid=sent.sid, from_number=sender, to_number=PERSON, body=sent.body
    )
    result = number_erase(
        tenant=tenant, phone=PERSON, audit=AuditContext.of(operator), reason="request", at_twilio=True
    )
    assert (result.twilio_redacted, result.twilio_failed, result.errors) == (1, 0, [])
    assert next(m for m in sandbox.messages() if m["sid"] == sent.sid)["body"] == ""


@pytest.mark.parametrize("purpose", ["otp", "transactional", "marketing"])
def test_compliance_gate_blocks_an_erased_number_for_every_purpose(tenant, operator, purpose):
    """After erasure the ledgers no longer name the number; the suppression hash must still block it."""
    from messaging.compliance.gate import gate_check

    seed_person(tenant)
    number_erase(tenant=tenant, phone=PERSON, audit=AuditContext.of(operator), reason="GDPR request #42")
    assert opt_out_latest(tenant=tenant, phone=PERSON) is None  # the ledger rows carry the marker now
    assert number_is_opted_out(tenant=tenant, phone=PERSON)  # ...but the number stays off limits
    assert numbers_opted_out(tenant=tenant, phones=[PERSON, NEIGHBOUR, "+14155550100"]) == {PERSON}
    verdict = gate_check(tenant=tenant, to=PERSON, purpose=purpose)
    assert verdict.decision == "block"
    assert verdict.reason == "opted_out"
