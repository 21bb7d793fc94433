"""Consent ledger pages: list and search, evidence detail, staff capture, CSV import."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from messaging.models import ConsentDisclosure, ConsentEvent, disclosure_hash
from tenants.models import AuditEvent
from tests.messaging.factories import CUSTOMER, OTHER_CUSTOMER, ConsentEventFactory, OptOutEventFactory, ago

pytestmark = pytest.mark.django_db
DISCLOSURE = "Acme marketing: up to 4 msgs/month. Msg & data rates may apply. Reply STOP to cancel."


def url(tenant, name="consent_list", **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def csv_file(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("consent.csv", text.encode(), content_type="text/csv")


@pytest.fixture
def events(tenant, other_tenant):
    return {
        "granted": ConsentEventFactory(
            tenant=tenant,
            phone=CUSTOMER,
            captured_at=ago(days=3),
            ip_address="203.0.113.9",
            user_agent="Mozilla/5.0 (iPhone)",
            source="https://acme.example/join",
            disclosure_text=DISCLOSURE,
            disclosure_version="v3",
        ),
        "otp": ConsentEventFactory(
            tenant=tenant, phone=OTHER_CUSTOMER, purpose="otp", captured_at=ago(days=2), disclosure_text=""
        ),
        "revoked": ConsentEventFactory(
            tenant=tenant,
            phone=CUSTOMER,
            action="revoked",
            captured_at=ago(days=1),
            method="keyword",
            disclosure_text="",
        ),
        "other": ConsentEventFactory(
            tenant=other_tenant, phone="+14155550177", captured_at=ago(hours=1), source="GLOBEX FORM"
        ),
    }


def row_ids(response):
    return [e.id for e in response.context["page"].rows]


def test_list_latest_first_and_search(client, viewer, tenant, events):
    client.force_login(viewer)
    response = client.get(url(tenant))
    assert row_ids(response) == [events["revoked"].id, events["otp"].id, events["granted"].id]
    assert "GLOBEX" not in response.content.decode()
    assert row_ids(client.get(url(tenant), {"q": "+1 415 555 0100"})) == [events["revoked"].id, events["granted"].id]
    assert row_ids(client.get(url(tenant), {"q": "0111"})) == [events["otp"].id]
    assert row_ids(client.get(url(tenant), {"purpose": "marketing", "action": "granted"})) == [events["granted"].id]
    assert row_ids(client.get(url(tenant), {"method": "keyword"})) == [events["revoked"].id]
    assert row_ids(client.get(url(tenant), {"q": "0177"})) == []


def test_detail_shows_the_evidence(client, viewer, tenant, events):
    client.force_login(viewer)
    html = client.get(url(tenant, "consent_detail", event_id=events["granted"].id)).content.decode()
    for expected in (
        DISCLOSURE.replace("&", "&amp;"),
        disclosure_hash(DISCLOSURE),
        "v3",
        "203.0.113.9",
        "Mozilla/5.0 (iPhone)",
        "https://acme.example/join",
        "SHA-256 verified",
        CUSTOMER,
    ):
        assert expected in html


def test_detail_of_another_tenants_event_is_404(client, tenant_admin, tenant, events):
    client.force_login(tenant_admin)
    assert client.get(url(tenant, "consent_detail", event_id=events["other"].id)).status_code == 404


def test_support_sees_masked_numbers(client, support_user, tenant, events):
    client.force_login(support_user)
    for page in (url(tenant), url(tenant, "consent_detail", event_id=events["granted"].id)):
        html = client.get(page).content.decode()
        assert "+1******0100" in html
        assert CUSTOMER not in html and OTHER_CUSTOMER not in html


# --- Capture -------------------------------------------------------------------------------------


def capture_data(**overrides):
    data = {
        "phone": "(415) 555-0100",
        "purpose": "marketing",
        "action": "granted",
        "method": "paper",
        "source": "Store sign-up sheet #12",
        "captured_at": "2025-05-01T10:30",
        "disclosure_text": DISCLOSURE,
        "disclosure_version": "paper-v2",
        "ip_address": "",
        "user_agent": "",
        "note": "Signed in store",
    }
    data.update(overrides)
    return data


def test_staff_capture_is_recorded_and_audited(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "consent_capture"), capture_data())
    event = ConsentEvent.objects.for_tenant(tenant).get()
    assert response.status_code == 302 and response["Location"] == url(tenant, "consent_detail", event_id=event.id)
    assert (event.phone, event.method, event.captured_by, event.ip_address) == (CUSTOMER, "paper", tenant_admin, None)
    # Entered in the tenant's zone like every page shows it (it was UTC before the zone was active).
    assert tenant.timezone == "America/New_York" and event.captured_at.isoformat().startswith("2025-05-01T14:30")
    assert event.disclosure.text == DISCLOSURE and event.disclosure.version == "paper-v2"
    audit = AuditEvent.objects.get(tenant=tenant, action="consent.capture")
    assert audit.details["consent_event"] == event.id


def test_capture_validates(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "consent_capture"), capture_data(disclosure_text=""))
    assert "must keep the exact disclosure" in response.content.decode()
    response = client.post(url(tenant, "consent_capture"), capture_data(phone="123"))
    assert "valid number" in response.content.decode() or "not a phone number" in response.content.decode()
    response = client.post(url(tenant, "consent_capture"), capture_data(captured_at="2999-01-01T00:00"))
    assert "in the future" in response.content.decode()
    response = client.post(url(tenant, "consent_capture"), capture_data(ip_address="999.1.1.1"))
    assert response.status_code == 200
    assert not ConsentEvent.objects.for_tenant(tenant).exists()
    # Transactional consent needs no disclosure text.
    ok = client.post(url(tenant, "consent_capture"), capture_data(purpose="transactional", disclosure_text=""))
    assert ok.status_code == 302


def test_capture_warns_when_number_is_opted_out(client, tenant_admin, tenant):
    OptOutEventFactory(tenant=tenant, phone=CUSTOMER)
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "consent_capture"), capture_data(), follow=True)
    assert "still opted out" in response.content.decode()


def test_viewer_cannot_capture(client, viewer, tenant):
    client.force_login(viewer)
    assert client.get(url(tenant, "consent_capture")).status_code == 403
    assert client.post(url(tenant, "consent_capture"), capture_data()).status_code == 403


# --- Import --------------------------------------------------------------------------------------

HEADER = "phone,purpose,action,method,captured_at,source,disclosure_text,disclosure_version,ip_address,user_agent\n"


def good_csv():
    return (
        HEADER
        + f'+14155550101,marketing,granted,web_form,2025-01-02T03:04:05Z,https://acme.example/join,"{DISCLOSURE}",v3,203.0.113.5,Mozilla/5.0\n'
        + f'+14155550102,Marketing,Granted,Web form,2025-01-03,,"{DISCLOSURE}",v3,,\n'
        + "+14155550103,transactional,granted,paper,2025-01-04,,,,,\n"
        + "+14155550103,transactional,granted,paper,2025-01-04,,,,,\n"  # duplicate of line 4
    )


def test_dry_run_then_import(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    dry = client.post(url(tenant, "consent_import"), {"file": csv_file(good_csv()), "dry_run": "on"})
    report = dry.context["report"]
    assert report.ok and report.to_import == 3 and [s.line for s in report.skipped] == [5]
    assert not ConsentEvent.objects.for_tenant(tenant).exists()

    done = client.post(url(tenant, "consent_import"), {"file": csv_file(good_csv())})
    assert done.status_code == 302
    events = list(ConsentEvent.objects.for_tenant(tenant).order_by("phone"))
    assert [(e.phone, e.purpose, e.method) for e in events] == [
        ("+14155550101", "marketing", "web_form"),
        ("+14155550102", "marketing", "web_form"),
        ("+14155550103", "transactional", "paper"),
    ]
    assert events[0].ip_address == "203.0.113.5" and events[0].captured_by == tenant_admin
    assert events[0].disclosure_id == events[1].disclosure_id  # one disclosure row per text
    assert ConsentDisclosure.objects.for_tenant(tenant).count() == 1
    assert AuditEvent.objects.get(tenant=tenant, action="consent.import").details["imported"] == 3

    # Importing the same file again changes nothing.
    again = client.post(url(tenant, "consent_import"), {"file": csv_file(good_csv()), "dry_run": "on"})
    assert again.context["report"].to_import == 0
    assert "already in the ledger" in again.content.decode()


def test_any_error_imports_nothing(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    text = (
        good_csv()
        + "+14155550104,marketing,granted,web_form,2025-01-05,,,,,\n"  # no disclosure
        + "+14155550105,sms,granted,web_form,2025-01-05,,,,,\n"  # bad purpose
        + "+14155550106,transactional,granted,carrier pigeon,2025-01-05,,,,bad-ip,\n"
        + "12,transactional,maybe,paper,,,,,,\n"
    )
    response = client.post(url(tenant, "consent_import"), {"file": csv_file(text)})
    assert response.status_code == 200
    report = response.context["report"]
    assert [e.line for e in report.errors] == [6, 7, 8, 9]
    assert "disclosure_text" in report.errors[0].message
    assert "purpose “sms”" in report.errors[1].message
    assert "method" in report.errors[2].message and "ip_address" in report.errors[2].message
    assert "captured_at is empty" in report.errors[3].message and "action" in report.errors[3].message
    assert not ConsentEvent.objects.for_tenant(tenant).exists()
    assert not AuditEvent.objects.filter(action="consent.import").exists()


def test_missing_columns(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "consent_import"), {"file": csv_file("phone,purpose\n+14155550101,otp\n")})
    assert "Missing columns: action, method, captured_at" in response.content.decode()
