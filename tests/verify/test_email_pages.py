"""The email log and suppression list pages: filters, masking for support staff, another
tenant's rows never shown, admins' suppression changes, the CSV exports' headers, the
configuration error banner and the support overview's email column."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tenants.emails import email_mask, email_text_mask
from verify.email.exports import EMAIL_COLUMNS, SUPPRESSION_COLUMNS
from verify.email.sending import provider_problem_open
from verify.email.suppressions import suppression_add
from verify.models import EmailMessage, EmailSuppression

pytestmark = pytest.mark.django_db


def url(tenant, name, **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def make_email(tenant, to="ana@example.com", status="delivered", **fields):
    return EmailMessage.objects.create(
        tenant=tenant,
        to_email=to,
        subject="Your receipt",
        text="Hi",
        category="consent_receipt",
        status=status,
        **fields,
    )


def csv_rows(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_email_mask():
    assert email_mask("ana.lopez@example.com") == "a***@e***.com"
    assert email_mask("x@localhost") == "x***@l***"
    assert email_mask("nonsense") == "n***"
    assert email_mask("") == ""
    assert email_text_mask("550 <ana@example.co.uk> unknown") == "550 <a***@e***.uk> unknown"


def test_log_lists_only_this_tenants_email(client, tenant, other_tenant, tenant_admin):
    make_email(tenant, to="ours@example.com")
    make_email(other_tenant, to="theirs@example.com")
    client.force_login(tenant_admin)
    body = client.get(url(tenant, "email_list")).content.decode()
    assert "ours@example.com" in body and "theirs@example.com" not in body


def test_log_filters_by_status_recipient_and_dates(client, tenant, tenant_admin):
    make_email(tenant, to="ana@example.com", status="delivered")
    make_email(tenant, to="bo@example.com", status="bounced")
    old = make_email(tenant, to="cy@example.com", status="delivered")
    EmailMessage.objects.for_tenant(tenant).filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    client.force_login(tenant_admin)

    def shown(**params):
        page = client.get(url(tenant, "email_list"), params).context["page"]
        return sorted(e.to_email for e in page.rows)

    assert shown(status="bounced") == ["bo@example.com"]
    assert shown(to="ANA@example.com") == ["ana@example.com"]
    since = (timezone.now() - timedelta(days=7)).date().isoformat()
    assert shown(created_from=since) == ["ana@example.com", "bo@example.com"]
    assert shown(created_from="2030-01-02", created_to="2030-01-01") == []  # invalid range: nothing


def test_log_pages_with_keyset_cursor(client, tenant, tenant_admin):
    for index in range(55):
        make_email(tenant, to=f"p{index}@example.com")
    client.force_login(tenant_admin)
    first = client.get(url(tenant, "email_list")).context["page"]
    assert len(first.rows) == 50 and first.older_cursor
    second = client.get(url(tenant, "email_list"), {"cursor": first.older_cursor}).context["page"]
    assert len(second.rows) == 5
    assert not {e.pk for e in first.rows} & {e.pk for e in second.rows}


def test_support_sees_addresses_masked(client, tenant, support_user):
    email = make_email(tenant, to="ana@example.com", error="550 <ana@example.com> unknown")
    client.force_login(support_user)
    body = client.get(url(tenant, "email_list")).content.decode()
    assert "ana@example.com" not in body and "a***@e***.com" in body
    detail = client.get(url(tenant, "email_detail", email_id=email.pk)).content.decode()
    assert "ana@example.com" not in detail
    suppression_add(tenant=tenant, email="bo@example.com", reason="bounce", detail="bo@example.com bounced")
    listing = client.get(url(tenant, "email_suppression_list")).content.decode()
    assert "bo@example.com" not in listing and "b***@e***.com" in listing


def test_detail_of_another_tenants_email_is_404(client, tenant, other_tenant, tenant_admin):
    theirs = make_email(other_tenant)
    client.force_login(tenant_admin)
    assert client.get(url(tenant, "email_detail", email_id=theirs.pk)).status_code == 404


def test_admin_adds_and_lifts_a_suppression(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "email_suppression_list"), {"email": " Ana@Example.com ", "detail": "Asked"})
    assert response.status_code == 302
    entry = EmailSuppression.objects.for_tenant(tenant).get()
    assert (entry.email, entry.reason, entry.created_by) == ("ana@example.com", "manual", tenant_admin)
    response = client.post(url(tenant, "email_suppression_remove", entry_id=entry.pk), {"reason": "Fixed"})
    assert response.status_code == 302
    assert not EmailSuppression.objects.for_tenant(tenant).exists()


def test_invalid_suppression_form_shows_errors_and_writes_nothing(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "email_suppression_list"), {"email": "nope", "detail": "x"})
    assert response.status_code == 200 and response.context["add_form"].errors["email"]
    assert not EmailSuppression.objects.for_tenant(tenant).exists()


def test_lifting_another_tenants_suppression_is_404(client, tenant, other_tenant, tenant_admin):
    theirs, _ = suppression_add(tenant=other_tenant, email="bo@example.com", reason="bounce")
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "email_suppression_remove", entry_id=theirs.pk), {"reason": "x"})
    assert response.status_code == 404
    assert EmailSuppression.objects.for_tenant(other_tenant).exists()


def test_viewer_cannot_change_the_suppression_list(client, tenant, viewer):
    client.force_login(viewer)
    assert (
        client.post(url(tenant, "email_suppression_list"), {"email": "a@example.com", "detail": "x"}).status_code == 403
    )
    page = client.get(url(tenant, "email_suppression_list"))
    assert page.context["add_form"] is None and b"Lift" not in page.content


def test_email_export_headers_rows_and_isolation(client, tenant, other_tenant, tenant_admin):
    make_email(tenant, to="ana@example.com", status="bounced")
    make_email(other_tenant, to="theirs@example.com")
    client.force_login(tenant_admin)
    response = client.get(url(tenant, "email_export"), {"status": "bounced"})
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="emails-acme-')
    rows = csv_rows(response)
    assert tuple(rows[0]) == EMAIL_COLUMNS
    assert [(r[1], r[4]) for r in rows[1:]] == [("ana@example.com", "bounced")]


def test_suppression_export_is_masked_for_support(client, tenant, other_tenant, support_user):
    suppression_add(tenant=tenant, email="ana@example.com", reason="group_unsubscribe", asm_group_id=5)
    suppression_add(tenant=other_tenant, email="theirs@example.com", reason="bounce")
    client.force_login(support_user)
    response = client.get(url(tenant, "email_suppression_export"))
    assert response["Content-Disposition"].startswith('attachment; filename="email-suppressions-acme-')
    rows = csv_rows(response)
    assert tuple(rows[0]) == SUPPRESSION_COLUMNS
    assert [r[:3] for r in rows[1:]] == [["a***@e***.com", "group_unsubscribe", "5"]]


def test_configuration_error_shows_on_the_log_and_support_overview(client, tenant, support_user):
    make_email(tenant, status="failed", error_status=401, error="SendGrid rejected the API key (401).")
    provider_problem_open(status_code=401, message="SendGrid rejected the API key (401).")
    client.force_login(support_user)
    log = client.get(url(tenant, "email_list")).content.decode()
    assert 'id="email-config-error"' in log and "rejected the API key" in log
    overview = client.get(reverse("support_overview")).content.decode()
    assert "data-email-config-error" in overview
    rows = list(
        csv.DictReader(io.StringIO(client.get(reverse("support_overview"), {"format": "csv"}).content.decode()))
    )
    acme = next(r for r in rows if r["tenant"] == "acme")
    assert (acme["email_failed_24h"], acme["email_config_error"]) == ("1", "SendGrid rejected the API key (401).")


def test_nav_links_to_the_email_pages(client, tenant, viewer):
    client.force_login(viewer)
    body = client.get(url(tenant, "message_list")).content.decode()
    assert url(tenant, "email_list") in body and url(tenant, "email_suppression_list") in body


def test_operator_reads_email_in_the_admin(client, tenant, django_user_model):
    make_email(tenant)
    suppression_add(tenant=tenant, email="bo@example.com", reason="bounce")
    provider_problem_open(status_code=401, message="SendGrid rejected the API key (401).")
    client.force_login(django_user_model.objects.create_superuser("op", password="x"))
    for model in ("emailmessage", "emailevent", "emailsuppression", "emailproviderproblem"):
        assert client.get(f"/admin/verify/{model}/").status_code == 200, model
    assert client.get("/admin/verify/emailsuppression/add/").status_code == 403
