"""The Verifications log: isolation, masking, filters, conversion per day and the CSV export's
fixed columns; the consent form admin pages' versioning; the platform's own codes."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from tenants.audit import SYSTEM, AuditContext
from tenants.retention import number_erase
from tests.verify.support import add_fault, sms_to, verify_codes
from verify.codes import code_check, code_send
from verify.consent.admin import consent_form_update
from verify.log import conversion_by_day
from verify.models import ConsentFormVersion, StaffVerification, Verification, VerificationSend, VerifyBreaker
from verify.tasks import verifications_expire_task

A_NUMBER, B_NUMBER = "+14155550301", "+14155550302"


def verification(tenant, to, **fields):
    values = {"channel": "sms", "purpose": "consent", "status": "pending", "expires_at": timezone.now()}
    values["sid"] = "VE" + to[-4:] * 8
    return Verification.objects.create(tenant=tenant, to=to, **{**values, **fields})


def export_rows(client, slug="acme", query=""):
    response = client.get(f"/t/{slug}/verifications/export.csv{query}")
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def rows(tenant, other_tenant):
    verification(tenant, A_NUMBER, status="approved")
    verification(tenant, "+14155550303", fallback=True, sid="")
    verification(other_tenant, B_NUMBER)


def test_export_has_the_exact_columns_and_only_this_tenants_rows(client, tenant_admin, rows):
    client.force_login(tenant_admin)
    header, *body = export_rows(client)
    assert header == ["sid", "to", "channel", "status", "created_at", "updated_at"]
    assert sorted(row[1] for row in body) == [A_NUMBER, "+14155550303"]
    assert all(row[4].endswith("Z") for row in body)
    assert [r[1] for r in export_rows(client, query="?status=approved")[1:]] == [A_NUMBER]


def test_support_staff_see_masked_numbers_in_page_and_export(client, support_user, rows):
    client.force_login(support_user)
    page = client.get("/t/acme/verifications/").content.decode()
    assert "+1******0301" in page and A_NUMBER not in page and B_NUMBER not in page
    assert {row[1] for row in export_rows(client)[1:]} == {"+1******0301", "+1******0303"}


def test_list_filters_and_flags_fallback_codes(client, viewer, rows):
    client.force_login(viewer)
    page = client.get("/t/acme/verifications/?fallback=true").content.decode()
    assert "+14155550303" in page and A_NUMBER not in page and "fallback" in page
    assert client.get("/t/acme/verifications/?phone=4155550301").status_code == 200
    assert client.get("/t/globex/verifications/").status_code == 404


def test_conversion_is_approved_over_started_per_day(tenant):
    now = timezone.now()
    for status in ("approved", "approved", "expired", "pending"):
        verification(tenant, A_NUMBER, status=status)
    yesterday = verification(tenant, A_NUMBER, status="approved")
    Verification.objects.for_tenant(tenant).filter(pk=yesterday.pk).update(created_at=now - timedelta(days=1))
    days = conversion_by_day(tenant=tenant, now=now)
    assert len(days) == 14 and days[-1].day == now.date()
    assert (days[-1].started, days[-1].approved, days[-1].rate_display) == (4, 2, "50%")
    assert (days[-2].started, days[-2].approved) == (1, 1) and days[0].rate is None


def test_editing_the_disclosure_makes_a_new_version_and_keeps_the_old(consent_form):
    tenant, v1 = consent_form.tenant, consent_form.current_version
    same = {
        "title": "Renamed",
        "collect_email": True,
        "is_published": True,
        "brand": v1.brand,
        "frequency": v1.frequency,
        "disclosure_text": v1.disclosure.text,
    }
    assert consent_form_update(tenant=tenant, form=consent_form, data=same, audit=SYSTEM).current_version == v1
    changed = {**same, "disclosure_text": v1.disclosure.text + " Terms: acme.example/terms."}
    v2 = consent_form_update(tenant=tenant, form=consent_form, data=changed, audit=SYSTEM).current_version
    assert v2.number == 2 and v2.disclosure != v1.disclosure and v2.disclosure.version == "offers v2"
    assert ConsentFormVersion.objects.for_tenant(tenant).filter(form=consent_form).count() == 2


def test_platform_codes_use_the_parent_account_and_its_own_breaker(sandbox, sandbox_settings, db):
    sandbox_settings.TWILIO_HTTP_TIMEOUT = 1.0
    sent = code_send(tenant=None, to="+14155550310", purpose="second_factor", client_ip="192.0.2.1")
    assert isinstance(sent.verification, StaffVerification) and sent.verification.sid.startswith("VE")
    [issued] = verify_codes(sandbox, "+14155550310")
    assert code_check(tenant=None, verification_id=sent.id, code=issued["code"]).approved

    sandbox_settings.VERIFY_PLATFORM_SMS_SENDER = "+15005550006"
    add_fault(sandbox, kind="503", path_contains="/Verifications", count=1)
    fallback = code_send(tenant=None, to="+14155550311", purpose="second_factor")
    assert fallback.fallback and VerifyBreaker.objects.get(scope="platform").state == "open"
    [sms] = sms_to(sandbox, "+14155550311")
    code = sms["body"].split("code is ")[1][:6]
    assert code_check(tenant=None, verification_id=fallback.id, code=code).approved
    assert not Verification.all_tenants.exists()  # nothing of the platform's in a tenant's log


def test_gdpr_erasure_redacts_the_number_in_verifications(tenant, rows, support_user):
    sent = Verification.objects.for_tenant(tenant).get(to=A_NUMBER)
    VerificationSend.objects.create(
        tenant=tenant, verification=sent, to=A_NUMBER, client_ip="192.0.2.9", channel="sms", sent_at=timezone.now()
    )
    number_erase(tenant=tenant, phone=A_NUMBER, reason="GDPR request", audit=AuditContext.of(support_user))
    assert not Verification.objects.for_tenant(tenant).filter(to=A_NUMBER).exists()
    assert not VerificationSend.objects.for_tenant(tenant).filter(Q(to=A_NUMBER) | Q(client_ip="192.0.2.9")).exists()
    assert Verification.objects.for_tenant(tenant).filter(to__startswith="erased:").count() == 1


def test_overdue_pending_verifications_expire(tenant, rows):
    overdue = verification(tenant, "+14155550320", expires_at=timezone.now() - timedelta(seconds=1))
    live = verification(tenant, "+14155550321", expires_at=timezone.now() + timedelta(minutes=5))
    assert verifications_expire_task() >= 1
    statuses = dict(Verification.objects.for_tenant(tenant).values_list("pk", "status"))
    assert statuses[overdue.pk] == "expired" and statuses[live.pk] == "pending"
