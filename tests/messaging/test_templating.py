"""Template placeholders: validation with clear errors, rendering, and the template pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from messaging.delivery.segments import GSM7_BASIC_CHARS, GSM7_EXTENSION_CHARS
from messaging.delivery.templating import sms_stats, template_parse, template_validate
from messaging.models import MessageTemplate
from tenants.models import AuditEvent
from tests.messaging.factories import BulkSendFactory, MessageTemplateFactory


@pytest.mark.parametrize(
    ("body", "variables"),
    [
        ("Hello", ()),
        ("Hi {{first_name}}!", ("first_name",)),
        ("Hi {{ first_name }}, {{_x1}} {{first_name}}", ("first_name", "_x1")),
        ("{{a}}{{b}}", ("a", "b")),
    ],
)
def test_valid_bodies(body, variables):
    parsed = template_validate(body)
    assert parsed.variables == variables


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("Hi {{first_name", "never closed"),
        ("Hi first_name}}", "closes nothing"),
        ("Hi {first_name}", "Stray “{”"),
        ("Hi {{First}}", "lower-case letters"),
        ("Hi {{1st}}", "do not start with a digit"),
        ("Hi {{first name}}", "lower-case letters"),
        ("Hi {{}}", "Empty placeholder"),
        ("Hi {{{x}}}", "nested"),
    ],
)
def test_invalid_bodies_say_why_and_where(body, fragment):
    parsed = template_parse(body)
    assert parsed.errors, body
    assert any(fragment in e for e in parsed.errors), parsed.errors
    assert all("character" in e for e in parsed.errors)


def test_every_error_is_reported_at_once():
    parsed = template_parse("{{A}} and {b} and {{c")
    assert len(parsed.errors) == 4  # {{A}}, stray {, stray }, unclosed {{


def test_render_fills_placeholders_and_needs_every_value():
    parsed = template_parse("Hi {{ name }}, your code is {{code}}. Bye {{name}}")
    assert parsed.render({"name": "Ana", "code": "42"}) == "Hi Ana, your code is 42. Bye Ana"
    with pytest.raises(KeyError):
        parsed.render({"name": "Ana"})


def test_js_counter_uses_the_same_gsm_tables():
    """static/js/sms_counter.js repeats messaging/delivery/segments.py's tables: they must not drift."""
    source = (Path(__file__).resolve().parents[2] / "static/js/sms_counter.js").read_text(encoding="utf-8")
    basic = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', source.split("var BASIC =", 1)[1].split("var EXTENSION", 1)[0]))
    extension = re.search(r'var EXTENSION = "((?:[^"\\]|\\.)*)"', source).group(1)

    def unescape(s):
        return s.encode("latin-1", "backslashreplace").decode("unicode_escape")

    assert set(unescape(basic)) == GSM7_BASIC_CHARS
    assert set(unescape(extension)) == GSM7_EXTENSION_CHARS


# --- pages --------------------------------------------------------------------------------------


def url(name, tenant, **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


@pytest.fixture
def reminder(tenant):
    return MessageTemplateFactory(
        tenant=tenant, name="Reminder", purpose="transactional", body="Hi {{first_name}}, see you {{when}}."
    )


def test_list_shows_encoding_segments_and_variables(client, tenant, viewer, reminder):
    MessageTemplateFactory(tenant=tenant, name="Emoji", purpose="marketing", body="Sale 😀 {{code}}")
    client.force_login(viewer)
    page = client.get(url("template_list", tenant)).content.decode()
    assert "Reminder" in page and "first_name, when" in page
    assert "UCS-2" in page and "GSM-7" in page
    assert "New template" not in page  # viewers read only


def test_admin_creates_a_template_and_it_is_audited(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    response = client.post(
        url("template_create", tenant), {"name": "Welcome", "purpose": "marketing", "body": "Hi {{first_name}}"}
    )
    assert response.status_code == 302
    template = MessageTemplate.objects.for_tenant(tenant).get(name="Welcome")
    assert AuditEvent.objects.filter(tenant=tenant, action="template.create", target="Welcome").exists()
    assert template.body == "Hi {{first_name}}"


def test_invalid_body_is_refused_with_the_reason(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    response = client.post(
        url("template_create", tenant), {"name": "Bad", "purpose": "marketing", "body": "Hi {{First Name}"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "never closed" in page
    assert not MessageTemplate.objects.for_tenant(tenant).filter(name="Bad").exists()


def test_preview_button_renders_and_counts_without_saving(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    body = "Hi {{first_name}} " + "x" * 150
    response = client.post(
        url("template_create", tenant), {"name": "P", "purpose": "marketing", "body": body, "preview": "1"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Hi First Name " in page  # stand-in value
    assert "GSM-7" in page and "<strong>2</strong> segments" in page
    assert not MessageTemplate.objects.for_tenant(tenant).exists()
    assert not AuditEvent.objects.filter(action__startswith="template.").exists()


def test_names_are_unique_per_tenant_not_globally(client, tenant, other_tenant, tenant_admin, reminder):
    MessageTemplateFactory(tenant=other_tenant, name="Welcome", purpose="marketing", body="x")
    client.force_login(tenant_admin)
    dup = client.post(url("template_create", tenant), {"name": "reminder", "purpose": "marketing", "body": "x"})
    assert dup.status_code == 200 and "already has a template" in dup.content.decode()
    ok = client.post(url("template_create", tenant), {"name": "Welcome", "purpose": "marketing", "body": "x"})
    assert ok.status_code == 302


def test_edit_and_viewer_read_only(client, tenant, tenant_admin, viewer, reminder):
    client.force_login(viewer)
    page = client.get(url("template_edit", tenant, template_id=reminder.id)).content.decode()
    assert "Read-only" in page and '<form method="post" novalidate>' not in page
    client.force_login(tenant_admin)
    response = client.post(
        url("template_edit", tenant, template_id=reminder.id),
        {"name": "Reminder", "purpose": "transactional", "body": "Bye {{first_name}}"},
    )
    assert response.status_code == 302
    reminder.refresh_from_db()
    assert reminder.body == "Bye {{first_name}}"
    event = AuditEvent.objects.get(action="template.update")
    assert event.details["fields"] == ["body"]


def test_other_tenants_template_is_404(client, tenant, other_tenant, tenant_admin):
    theirs = MessageTemplateFactory(tenant=other_tenant, name="Theirs", purpose="marketing", body="x")
    client.force_login(tenant_admin)
    assert client.get(url("template_edit", tenant, template_id=theirs.id)).status_code == 404
    assert client.post(url("template_delete", tenant, template_id=theirs.id)).status_code == 404
    assert MessageTemplate.objects.for_tenant(other_tenant).filter(pk=theirs.pk).exists()
    assert "Theirs" not in client.get(url("template_list", tenant)).content.decode()


def test_a_template_used_by_a_bulk_send_is_kept(client, tenant, tenant_admin, reminder):
    BulkSendFactory(tenant=tenant, name="B", template=reminder, purpose="transactional")
    client.force_login(tenant_admin)
    response = client.post(url("template_delete", tenant, template_id=reminder.id), follow=True)
    assert "is used by a bulk send" in response.content.decode()
    assert MessageTemplate.objects.for_tenant(tenant).filter(pk=reminder.pk).exists()


def test_sms_stats():
    assert sms_stats("hello") == {"encoding": "GSM-7", "length": 5, "segments": 1}
    assert sms_stats("€" * 81)["segments"] == 2  # 162 septets
    assert sms_stats("é" * 10)["encoding"] == "GSM-7"
    assert sms_stats("ç")["encoding"] == "UCS-2"
