"""Opt-out list, admin opt-out/opt-in with a reason, CSV import (dry run, all-or-nothing)."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from messaging.ledgers.reachability import number_is_opted_out, numbers_opted_out
from messaging.ledgers.selectors import consent_granted_purposes
from messaging.models import ConsentEvent, OptOutEvent
from tenants.models import AuditEvent
from tests.messaging.factories import CUSTOMER, OTHER_CUSTOMER, ConsentEventFactory, OptOutEventFactory, ago

pytestmark = pytest.mark.django_db


def url(tenant, name="opt_out_list", **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def csv_file(text: str, name: str = "optouts.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def audits(tenant, action):
    return AuditEvent.objects.filter(tenant=tenant, action=action)


# --- List ----------------------------------------------------------------------------------------


@pytest.fixture
def ledger(tenant, other_tenant):
    OptOutEventFactory(tenant=tenant, phone=CUSTOMER, created_at=ago(days=5), keyword="STOP", reason="")
    OptOutEventFactory(tenant=tenant, phone=OTHER_CUSTOMER, created_at=ago(days=4))
    OptOutEventFactory(
        tenant=tenant, phone=OTHER_CUSTOMER, action="opt_in", source="keyword", keyword="START", created_at=ago(days=2)
    )
    OptOutEventFactory(tenant=other_tenant, phone="+14155550177", created_at=ago(days=1), reason="GLOBEX REASON")


def test_list_shows_current_state_per_number(client, viewer, tenant, ledger):
    client.force_login(viewer)
    response = client.get(url(tenant))
    rows = response.context["page"].rows
    assert [(e.phone, e.action) for e in rows] == [(OTHER_CUSTOMER, "opt_in"), (CUSTOMER, "opt_out")]
    html = response.content.decode()
    link = re.search(r'href="(/t/acme/numbers/[^/"]+/history/)"', html)  # by opaque reference
    assert link and CUSTOMER not in link.group(1) and client.get(link.group(1)).status_code == 200
    assert "GLOBEX" not in html and "+14155550177" not in html
    assert "Opt a number out" not in html  # viewers get no form


def test_search_by_full_number_suffix_and_state(client, viewer, tenant, ledger):
    client.force_login(viewer)
    assert [e.phone for e in client.get(url(tenant), {"q": "(415) 555-0100"}).context["page"].rows] == [CUSTOMER]
    assert [e.phone for e in client.get(url(tenant), {"q": "0111"}).context["page"].rows] == [OTHER_CUSTOMER]
    assert [e.phone for e in client.get(url(tenant), {"state": "opt_out"}).context["page"].rows] == [CUSTOMER]
    bad = client.get(url(tenant), {"q": "hello"})
    assert bad.context["page"].rows == [] and "last digits" in bad.content.decode()
    assert client.get(url(tenant), {"q": "0177"}).context["page"].rows == []  # other tenant's number


def test_support_sees_masked_numbers_and_links_without_them(client, support_user, tenant, ledger):
    client.force_login(support_user)
    html = client.get(url(tenant)).content.decode()
    assert "+1******0100" in html
    assert CUSTOMER not in html and OTHER_CUSTOMER not in html
    assert "Opt back in" not in html


# --- Admin opt-out / opt-in ------------------------------------------------------------------------


def test_admin_opts_out_with_reason_audited(client, tenant_admin, tenant):
    ConsentEventFactory(tenant=tenant, phone=CUSTOMER)
    client.force_login(tenant_admin)
    response = client.post(
        url(tenant, "opt_out_change"), {"phone": "415-555-0100", "action": "opt_out", "reason": "Asked by phone"}
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/t/acme/numbers/") and CUSTOMER not in response["Location"]
    assert CUSTOMER in client.get(response["Location"]).content.decode()  # the number's history
    event = OptOutEvent.objects.for_tenant(tenant).get()
    assert (event.phone, event.source, event.reason, event.actor) == (CUSTOMER, "admin", "Asked by phone", tenant_admin)
    assert consent_granted_purposes(tenant=tenant, phone=CUSTOMER) == []
    audit = audits(tenant, "opt_out.add").get()
    assert (
        audit.reason == "Asked by phone"
        and CUSTOMER not in audit.target
        and audit.target.endswith(CUSTOMER[-4:])
        and audit.actor == tenant_admin
    )


def test_reason_is_required_and_numbers_validated(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "opt_out_change"), {"phone": CUSTOMER, "action": "opt_out", "reason": " "})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    response = client.post(url(tenant, "opt_out_change"), {"phone": "555", "action": "opt_out", "reason": "x"})
    assert "not a valid number" in response.content.decode() or "not a phone number" in response.content.decode()
    assert not OptOutEvent.objects.for_tenant(tenant).exists()
    assert not audits(tenant, "opt_out.add").exists()


def test_admin_opts_back_in_with_twilio_warning(client, tenant_admin, tenant):
    OptOutEventFactory(tenant=tenant, phone=CUSTOMER, keyword="STOP", created_at=ago(days=3))
    client.force_login(tenant_admin)
    response = client.post(
        url(tenant, "opt_out_change"),
        {"phone": CUSTOMER, "action": "opt_in", "reason": "Customer asked in store"},
        follow=True,
    )
    assert not number_is_opted_out(tenant=tenant, phone=CUSTOMER)
    assert audits(tenant, "opt_out.remove").get().reason == "Customer asked in store"
    assert "text START" in response.content.decode()


def test_cannot_opt_in_a_number_that_is_not_opted_out(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "opt_out_change"), {"phone": CUSTOMER, "action": "opt_in", "reason": "why"})
    assert response.status_code == 200 and "not opted out" in response.content.decode()


def test_viewer_and_support_cannot_change(client, viewer, support_user, tenant):
    for user in (viewer, support_user):
        client.force_login(user)
        data = {"phone": CUSTOMER, "action": "opt_out", "reason": "no"}
        assert client.post(url(tenant, "opt_out_change"), data).status_code == 403
        assert client.get(url(tenant, "opt_out_change")).status_code == 403
    assert not OptOutEvent.objects.for_tenant(tenant).exists()


# --- CSV import ----------------------------------------------------------------------------------

GOOD_CSV = (
    "phone,reason,opted_out_at\n"
    "+14155550101,Old provider STOP,2024-11-02\n"
    "(415) 555-0102,,2024-11-03T10:00:00Z\n"
    "+14155550101,again,2024-12-01\n"  # duplicate of line 2
    f"{CUSTOMER},,\n"  # already opted out
)


def test_dry_run_reports_and_writes_nothing(client, tenant_admin, tenant):
    OptOutEventFactory(tenant=tenant, phone=CUSTOMER, created_at=ago(days=10))
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "opt_out_import"), {"file": csv_file(GOOD_CSV), "dry_run": "on"})
    assert response.status_code == 200
    report = response.context["report"]
    assert report.ok and report.total_rows == 4 and report.to_import == 2
    assert [(s.line, s.message.split(" ")[0]) for s in report.skipped] == [(4, "Duplicate"), (5, "Already")]
    assert "Duplicate of line 2" in response.content.decode()
    assert OptOutEvent.objects.for_tenant(tenant).count() == 1
    assert not audits(tenant, "opt_out.import").exists()

    # "Import now" re-uses the checked file without uploading it again.
    token = response.context["token"]
    assert token
    done = client.post(url(tenant, "opt_out_import"), {"upload": token})
    assert done.status_code == 302
    assert numbers_opted_out(tenant=tenant, phones=["+14155550101", "+14155550102"]) == {"+14155550101", "+14155550102"}
    imported = OptOutEvent.objects.for_tenant(tenant).filter(source="import").order_by("phone")
    assert [(e.phone, e.created_at.date().isoformat(), e.reason) for e in imported] == [
        ("+14155550101", "2024-11-02", "Old provider STOP"),
        ("+14155550102", "2024-11-03", "Imported opt-out"),
    ]
    assert all(e.actor == tenant_admin for e in imported)
    audit = audits(tenant, "opt_out.import").get()
    assert audit.details == {"rows": 4, "imported": 2, "skipped": 2}
    assert client.post(url(tenant, "opt_out_import"), {"upload": token}).status_code == 200  # token used up


def test_invalid_rows_are_listed_by_line_and_nothing_is_imported(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    text = (
        "phone,opted_out_at\n+14155550101,2024-01-01\nnot-a-number,\n+14155550103,yesterday\n+14155550104,2999-01-01\n"
    )
    response = client.post(url(tenant, "opt_out_import"), {"file": csv_file(text)})  # a real import
    assert response.status_code == 200
    report = response.context["report"]
    assert not report.ok and report.imported is None
    assert [e.line for e in report.errors] == [3, 4, 5]
    assert "not an ISO date" in report.errors[1].message and "future" in report.errors[2].message
    assert "Nothing was imported" in response.content.decode()
    assert not OptOutEvent.objects.for_tenant(tenant).exists()
    assert not audits(tenant, "opt_out.import").exists()


def test_semicolon_separated_excel_file_with_bom(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    text = "\ufeffPhone;Reason\r\n+14155550101;Asked; by letter\r\n"
    upload = SimpleUploadedFile("excel.csv", text.encode("utf-8"), content_type="text/csv")
    response = client.post(url(tenant, "opt_out_import"), {"file": upload, "dry_run": "on"})
    report = response.context["report"]
    assert report.ok and report.to_import == 1 and report.rows[0].reason == "Asked"
    assert report.ignored_columns == [] and report.total_rows == 1


def test_not_utf8_is_a_file_error(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    upload = SimpleUploadedFile("latin.csv", "phone,reason\n+14155550101,Müller\n".encode("latin-1"))
    response = client.post(url(tenant, "opt_out_import"), {"file": upload, "dry_run": "on"})
    assert "not UTF-8" in response.content.decode()


def test_missing_phone_column_is_a_file_error(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "opt_out_import"), {"file": csv_file("number\n+14155550101\n"), "dry_run": "on"})
    assert "Missing column: phone" in response.content.decode()


def test_import_revokes_consent_and_skips_later_opt_ins(client, tenant_admin, tenant, other_tenant):
    ConsentEventFactory(tenant=tenant, phone="+14155550101", purpose="marketing", captured_at=ago(days=900))
    OptOutEventFactory(tenant=tenant, phone="+14155550102", created_at=ago(days=800))
    OptOutEventFactory(
        tenant=tenant, phone="+14155550102", action="opt_in", source="keyword", keyword="START", created_at=ago(days=30)
    )
    OptOutEventFactory(
        tenant=other_tenant, phone="+14155550101", created_at=ago(days=1)
    )  # another tenant's state is irrelevant
    client.force_login(tenant_admin)
    text = "phone,opted_out_at\n+14155550101,2024-06-01\n+14155550102,2024-06-01\n"
    response = client.post(url(tenant, "opt_out_import"), {"file": csv_file(text)})
    assert response.status_code == 302
    assert number_is_opted_out(tenant=tenant, phone="+14155550101")
    assert not number_is_opted_out(tenant=tenant, phone="+14155550102")  # opted back in after the file's date
    revoked = ConsentEvent.objects.for_tenant(tenant).get(action="revoked")
    assert (revoked.phone, revoked.method, revoked.opt_out_event.source) == ("+14155550101", "import", "import")


def test_import_batches_its_queries(client, tenant_admin, tenant):
    client.force_login(tenant_admin)

    def run(n: int, first: int) -> int:
        text = "phone\n" + "".join(f"+1415555{first + i:04d}\n" for i in range(n))
        with CaptureQueriesContext(connection) as queries:
            response = client.post(url(tenant, "opt_out_import"), {"file": csv_file(text)})
        assert response.status_code == 302
        return len(queries.captured_queries)

    small, big = run(3, 1000), run(120, 2000)
    assert big <= small + 3  # no query per row (bulk inserts may be split into a few batches)
    assert OptOutEvent.objects.for_tenant(tenant).count() == 123


def test_viewer_and_support_cannot_import(client, viewer, support_user, tenant):
    for user in (viewer, support_user):
        client.force_login(user)
        assert client.get(url(tenant, "opt_out_import")).status_code == 403
        assert client.post(url(tenant, "opt_out_import"), {"file": csv_file(GOOD_CSV)}).status_code == 403
    assert not OptOutEvent.objects.for_tenant(tenant).exists()
