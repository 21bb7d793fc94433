"""Per-number history (the consent proof): timeline, sent-after-opt-out alarm, Twilio 21610
warning, exports, masking for support staff and the audited unmask."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.urls import reverse

from messaging.ledgers.services import opt_out_record
from messaging.number_refs import number_ref
from tenants.models import AuditEvent
from tests.messaging.factories import (
    CUSTOMER,
    OUR_NUMBER,
    SERVICE,
    ConsentEventFactory,
    MessageFactory,
    OptOutEventFactory,
    RevocationReviewFactory,
    ago,
)

pytestmark = pytest.mark.django_db


def url(tenant, number=CUSTOMER, name="number_history"):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, "number": number})


@pytest.fixture
def story(tenant, other_tenant):
    """Granted marketing consent, STOP, START, a free-text revocation under review."""
    consent = ConsentEventFactory(tenant=tenant, phone=CUSTOMER, captured_at=ago(days=30), ip_address="198.51.100.7")
    stop = MessageFactory(
        tenant=tenant, direction="inbound", status="received", body="STOP", keyword="opt_out", at=ago(days=20)
    )
    opt_out_record(
        tenant=tenant,
        phone=CUSTOMER,
        source="keyword",
        keyword="STOP",
        sender=OUR_NUMBER,
        message=stop,
        at=stop.created_at,
    )
    start = MessageFactory(
        tenant=tenant,
        direction="inbound",
        status="received",
        body="START",
        keyword="opt_in",
        at=ago(days=10),
    )
    OptOutEventFactory(
        tenant=tenant,
        phone=CUSTOMER,
        action="opt_in",
        keyword="START",
        sender=OUR_NUMBER,
        message=start,
        created_at=ago(days=10),
    )
    review = RevocationReviewFactory(tenant=tenant, phone=CUSTOMER, body="pls no more texts", received_at=ago(days=2))
    MessageFactory(tenant=tenant, body="Before the STOP", at=ago(days=25))
    # Another tenant: same number, its own history, never shown here.
    OptOutEventFactory(tenant=other_tenant, phone=CUSTOMER, reason="GLOBEX REASON", created_at=ago(days=15))
    ConsentEventFactory(tenant=other_tenant, phone=CUSTOMER, source="GLOBEX FORM", captured_at=ago(days=15))
    return {"consent": consent, "review": review}


def test_timeline_shows_every_kind_of_event(client, viewer, tenant, story):
    client.force_login(viewer)
    response = client.get(url(tenant))
    assert response.status_code == 200
    categories = [e.category for e in response.context["timeline"]]
    assert categories == ["consent", "keyword", "opt_out", "consent", "keyword", "opt_out", "review"]
    assert [e.action for e in response.context["timeline"]][2:4] == ["opt-out", "consent revoked"]
    html = response.content.decode()
    assert "Opted back in" in html and "pls no more texts" in html and "198.51.100.7" in html
    assert "GLOBEX" not in html
    assert 'id="sent-while-opted-out"' not in html  # nothing sent while opted out
    assert "data-print" in html and "no-print" in html


def test_outbound_after_opt_out_is_shown_loudly(client, tenant_admin, tenant):
    OptOutEventFactory(tenant=tenant, phone=CUSTOMER, keyword="STOP", created_at=ago(days=5))
    bad = MessageFactory(tenant=tenant, body="Flash sale!", purpose="marketing", at=ago(days=4))
    MessageFactory(tenant=tenant, body="Blocked by the gate", status="blocked", at=ago(days=3))  # never left: fine
    MessageFactory(tenant=tenant, body="Sent before", at=ago(days=6))
    client.force_login(tenant_admin)
    response = client.get(url(tenant))
    html = response.content.decode()
    assert [item.message.id for item in response.context["history"].sent_while_opted_out] == [bad.id]
    alert = html[html.index('id="sent-while-opted-out"') :]
    assert "alert-danger" in html[html.index('id="sent-while-opted-out"') - 80 :][:200]
    assert "1 outbound message sent while this number was opted out" in alert
    assert f"/messages/{bad.id}/" in alert


def test_confirmed_revocation_counts_from_when_the_person_sent_it(client, tenant_admin, tenant):
    review = RevocationReviewFactory(tenant=tenant, phone=CUSTOMER, received_at=ago(days=6))
    review.status = "confirmed"
    review.decided_at = ago(days=1)
    review.save()
    OptOutEventFactory(tenant=tenant, phone=CUSTOMER, source="revocation_review", created_at=ago(days=1))
    sent = MessageFactory(tenant=tenant, body="Promo", at=ago(days=3))
    client.force_login(tenant_admin)
    history = client.get(url(tenant)).context["history"]
    assert [i.message.id for i in history.sent_while_opted_out] == [sent.id]
    assert "free text" in history.sent_while_opted_out[0].reason


def test_marketing_after_consent_revoked_is_flagged_but_transactional_is_not(client, tenant_admin, tenant):
    ConsentEventFactory(tenant=tenant, phone=CUSTOMER, captured_at=ago(days=10))
    ConsentEventFactory(tenant=tenant, phone=CUSTOMER, action="revoked", captured_at=ago(days=5), disclosure_text="")
    promo = MessageFactory(tenant=tenant, body="Promo", purpose="marketing", at=ago(days=4))
    MessageFactory(tenant=tenant, body="Your receipt", purpose="transactional", at=ago(days=3))
    client.force_login(tenant_admin)
    history = client.get(url(tenant)).context["history"]
    assert [i.message.id for i in history.sent_while_opted_out] == [promo.id]


def test_21610_after_opt_in_warns_and_names_the_sender(client, tenant_admin, tenant):
    OptOutEventFactory(tenant=tenant, phone=CUSTOMER, keyword="STOP", sender=OUR_NUMBER, created_at=ago(days=5))
    OptOutEventFactory(
        tenant=tenant, phone=CUSTOMER, action="opt_in", source="admin", reason="asked", created_at=ago(days=4)
    )
    failed = MessageFactory(
        tenant=tenant,
        status="failed",
        error_code=21610,
        at=ago(days=1),
        messaging_service_sid=SERVICE,
        ours="+14155550188",
    )
    client.force_login(tenant_admin)
    html = client.get(url(tenant)).content.decode()
    warning = html[html.index('id="twilio-block"') :][:1200]
    assert "Twilio still blocks this number: the person must text START to that sender" in warning
    assert "+14155550188" in warning and SERVICE in warning
    assert f"/messages/{failed.id}/" in warning


def test_admin_opt_in_after_twilio_stop_warns_even_before_a_failure(client, tenant_admin, tenant):
    OptOutEventFactory(tenant=tenant, phone=CUSTOMER, keyword="STOP", sender=SERVICE, created_at=ago(days=5))
    OptOutEventFactory(
        tenant=tenant, phone=CUSTOMER, action="opt_in", source="admin", reason="asked", created_at=ago(days=4)
    )
    client.force_login(tenant_admin)
    html = client.get(url(tenant)).content.decode()
    assert 'id="twilio-block"' in html and SERVICE in html


def test_no_warning_when_the_person_texted_start(client, tenant_admin, tenant, story):
    client.force_login(tenant_admin)
    assert 'id="twilio-block"' not in client.get(url(tenant)).content.decode()


def test_csv_and_json_exports(client, viewer, tenant, story):
    client.force_login(viewer)
    response = client.get(url(tenant), {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 7 and {r["phone"] for r in rows} == {CUSTOMER}
    consent = rows[0]
    assert consent["category"] == "consent" and consent["disclosure_sha256"] == story["consent"].disclosure.sha256
    assert "GLOBEX" not in response.content.decode()
    data = json.loads(client.get(url(tenant), {"format": "json"}).content)
    assert data["phone"] == CUSTOMER and len(data["events"]) == 7 and data["opted_out"] is False
    # Members' exports are on the record too, the number masked in the audit trail.
    audits = AuditEvent.objects.filter(tenant=tenant, action="export.number_history").order_by("id")
    assert [(a.details["format"], a.details["masked"], a.actor, a.target) for a in audits] == [
        ("csv", False, viewer, "+1******0100"),
        ("json", False, viewer, "+1******0100"),
    ]


def test_support_sees_it_masked_everywhere_and_exports_are_audited(client, support_user, tenant, story):
    client.force_login(support_user)
    html = client.get(url(tenant)).content.decode()
    assert "+1******0100" in html and CUSTOMER not in html and OUR_NUMBER not in html
    for fmt in ("csv", "json"):
        body = client.get(url(tenant), {"format": fmt}).content.decode()
        assert CUSTOMER not in body and OUR_NUMBER not in body and "+1******0100" in body
    audits = AuditEvent.objects.filter(tenant=tenant, action="export.number_history").order_by("id")
    assert [a.details["format"] for a in audits] == ["csv", "json"]
    assert all(a.target == "+1******0100" and a.actor == support_user for a in audits)


def test_support_links_carry_a_token_not_the_number(client, support_user, tenant, other_tenant, story):
    client.force_login(support_user)
    html = client.get(reverse("opt_out_list", kwargs={"tenant_slug": tenant.slug})).content.decode()
    link = re.search(r'href="(/t/acme/numbers/([^/"]+)/history/)"', html)
    assert link and "+1" not in link.group(2)
    assert client.get(link.group(1)).status_code == 200
    # The token is bound to its tenant: it opens nothing in another one.
    assert client.get(url(other_tenant, link.group(2))).status_code == 404
    assert client.get(url(tenant, "gAAAAAnonsense")).status_code == 404
    assert client.get(url(tenant, "+1555")).status_code == 404


def test_member_links_carry_a_token_and_old_number_urls_still_open(client, viewer, tenant, story):
    """Members' links use the opaque reference too (URLs reach history, Referer and access
    logs); a bookmarked E.164 URL from before keeps opening the page."""
    client.force_login(viewer)
    html = client.get(reverse("opt_out_list", kwargs={"tenant_slug": tenant.slug})).content.decode()
    links = re.findall(r'href="/t/acme/numbers/([^/"]+)/history/"', html)
    assert links and not [ref for ref in links if "+1" in ref or "%2B" in ref or "4155550100" in ref]
    by_token = client.get(url(tenant, links[0]))
    assert by_token.status_code == 200 and CUSTOMER in by_token.content.decode()
    bookmarked = client.get(url(tenant, CUSTOMER))
    assert bookmarked.status_code == 200 and CUSTOMER in bookmarked.content.decode()


def test_unmask_needs_a_reason_and_is_audited(client, support_user, tenant, story):
    client.force_login(support_user)
    ref = number_ref(CUSTOMER, tenant=tenant)
    refused = client.post(url(tenant, ref, "number_unmask"), {"reason": ""})
    assert refused.status_code == 200 and CUSTOMER not in refused.content.decode()
    assert not AuditEvent.objects.filter(action="support.unmask").exists()
    shown = client.post(url(tenant, ref, "number_unmask"), {"reason": "Ticket #4411: caller verification"})
    assert shown.status_code == 200 and CUSTOMER in shown.content.decode()
    assert "no-store" in shown["Cache-Control"] or "no-cache" in shown["Cache-Control"]
    audit = AuditEvent.objects.get(action="support.unmask")
    assert (audit.tenant, audit.actor, audit.target) == (tenant, support_user, "+1******0100")
    assert audit.reason == "Ticket #4411: caller verification"


def test_unmask_is_for_support_only(client, tenant_admin, viewer, tenant):
    for user in (tenant_admin, viewer):
        client.force_login(user)
        assert (
            client.post(url(tenant, CUSTOMER, "number_unmask"), {"reason": "just curious, really"}).status_code == 403
        )
    assert not AuditEvent.objects.filter(action="support.unmask").exists()


def test_number_lookup_redirects_to_history(client, viewer, support_user, tenant):
    client.force_login(viewer)
    lookup = reverse("number_list", kwargs={"tenant_slug": tenant.slug})
    location = client.get(lookup, {"phone": "415 555 0100"})["Location"]
    assert "4155550100" not in location  # the opaque reference, for members too
    assert CUSTOMER in client.get(location).content.decode()  # read with the tenant's region
    assert "valid number" in client.get(lookup, {"phone": "12"}).content.decode()
    client.force_login(support_user)
    assert CUSTOMER not in client.get(lookup, {"phone": CUSTOMER})["Location"]
