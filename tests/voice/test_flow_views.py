"""The call flow pages: editing saves versions (audited), invalid flows are refused with every
reason and write nothing, the preview walks the draft without saving, read-only roles read."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from tenants.models import AuditEvent
from tests.tenants.factories import PhoneNumberFactory
from tests.voice.flow_form_data import flow_form_post
from voice.models import CallFlow, CallFlowVersion

pytestmark = pytest.mark.django_db

OURS = "+14155550111"


@pytest.fixture
def number(tenant):
    return PhoneNumberFactory(tenant=tenant, phone_number=OURS, voice=True, friendly_name="Front desk")


def url(name: str, tenant, **kwargs) -> str:
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def versions(tenant) -> list[int]:
    return list(CallFlowVersion.objects.for_tenant(tenant).order_by("number").values_list("number", flat=True))


def test_admin_saves_versions_and_the_history_lists_them(client, tenant, tenant_admin, number):
    client.force_login(tenant_admin)
    edit = url("call_flow_edit", tenant, number_id=number.pk)
    page = client.get(edit)
    assert page.status_code == 200 and b"No flow yet" in page.content
    response = client.post(edit, flow_form_post())
    assert response.status_code == 302 and response["Location"] == edit
    response = client.post(edit, flow_form_post(greeting_text="Hello again."))
    assert versions(tenant) == [1, 2]
    flow = CallFlow.objects.for_tenant(tenant).get()
    assert flow.current_version.number == 2 and flow.name == "Main line"
    assert flow.current_version.definition["greeting"]["text"] == "Hello again."
    assert flow.current_version.definition["menu"]["options"][0]["action"]["target"] == "+12125550199"
    assert AuditEvent.objects.filter(tenant=tenant, action="call_flow.save").count() == 2
    page = client.get(edit)
    assert "What callers hear (v2)" in page.content.decode()
    assert "The caller presses 9 (opt out of calls and texts)" in page.content.decode()
    history = client.get(url("call_flow_versions", tenant, number_id=number.pk)).content.decode()
    assert "v1" in history and "v2" in history and "current" in history
    old = client.get(url("call_flow_version", tenant, number_id=number.pk, version=1)).content.decode()
    assert "Thanks for calling Acme." in old
    listing = client.get(url("call_flow_list", tenant)).content.decode()
    assert OURS in listing and "Main line" in listing


def test_invalid_flow_lists_every_problem_and_writes_nothing(client, tenant, tenant_admin, number):
    client.force_login(tenant_admin)
    data = flow_form_post(
        options=[
            {"digit": "1", "type": "forward", "target": "555"},
            {"digit": "2", "type": ""},  # dangling: a key without an action
            {"digit": "3", "type": "message", "audio_kind": "play", "audio_url": "http://insecure.example/a.mp3"},
        ]
    )
    response = client.post(url("call_flow_edit", tenant, number_id=number.pk), data)
    text = response.content.decode()
    assert response.status_code == 200 and "Not saved" in text
    assert "Menu key 1: forward to a valid number" in text
    assert "Menu key 2: choose what happens" in text
    assert "https:// URL" in text
    assert versions(tenant) == [] and not AuditEvent.objects.filter(action="call_flow.save").exists()


def test_a_menu_with_no_way_out_is_refused(client, tenant, tenant_admin, number):
    client.force_login(tenant_admin)
    data = flow_form_post(options=[{"digit": "0", "type": "repeat"}])
    data["no_input-type"] = "repeat"
    response = client.post(url("call_flow_edit", tenant, number_id=number.pk), data)
    assert "no way out" in response.content.decode() and versions(tenant) == []


def test_preview_without_saving_shows_the_draft_including_after_hours(client, tenant, tenant_admin, number):
    client.force_login(tenant_admin)
    data = flow_form_post(hours_enabled="on", days=["0", "1", "2", "3", "4"])
    data.update(
        {"after_hours-type": "message", "after_hours-audio_text": "We are closed.", "after_hours-then": "voicemail"}
    )
    data.pop("save")
    data["preview"] = "1"
    response = client.post(url("call_flow_edit", tenant, number_id=number.pk), data)
    text = response.content.decode()
    assert response.status_code == 200 and "Preview of your changes (not saved)" in text
    assert "After hours" in text and "We are closed." in text
    assert "Forwarded to +12125550199" in text
    assert versions(tenant) == []


def test_read_only_roles_see_the_flow_without_the_form(client, tenant, tenant_admin, viewer, support_user, number):
    client.force_login(tenant_admin)
    client.post(url("call_flow_edit", tenant, number_id=number.pk), flow_form_post())
    for user in (viewer, support_user):
        client.force_login(user)
        text = client.get(url("call_flow_edit", tenant, number_id=number.pk)).content.decode()
        assert "Read-only" in text and 'name="flow-voice"' not in text
        assert "The caller presses 1 (forward the call)" in text
        assert client.post(url("call_flow_edit", tenant, number_id=number.pk), flow_form_post()).status_code == 403
    assert versions(tenant) == [1]


def test_another_tenants_number_is_404(client, other_tenant, other_admin, tenant, number):
    client.force_login(other_admin)
    # Through one's own tenant, another tenant's number id is simply not there.
    assert client.get(url("call_flow_edit", other_tenant, number_id=number.pk)).status_code == 404
    assert client.post(url("call_flow_edit", other_tenant, number_id=number.pk), flow_form_post()).status_code == 404
    assert client.get(url("call_flow_versions", other_tenant, number_id=number.pk)).status_code == 404
    assert versions(tenant) == []


def test_the_calls_page_and_the_menu_link_to_call_flows(client, tenant, viewer):
    client.force_login(viewer)
    text = client.get(url("call_list", tenant)).content.decode()
    assert text.count(url("call_flow_list", tenant)) >= 2  # page button and sidebar


class _FormValues(HTMLParser):
    """The values a browser would submit from the page's form (inputs, selects, textareas)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and name != "csrfmiddlewaretoken":
            if attrs.get("type") in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.values.setdefault(name, []).append(attrs.get("value", "on"))
            elif attrs.get("type") != "submit":
                self.values.setdefault(name, []).append(attrs.get("value", ""))
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.values.setdefault(self._select, []).append(attrs.get("value", ""))
        elif tag == "textarea":
            self._textarea = name
            self.values.setdefault(name, []).append("")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea][-1] += data.strip("\n")


def test_saving_the_page_unchanged_keeps_every_key(client, tenant, tenant_admin, number):
    """What the editor renders for a saved flow posts back to the same flow (no key dropped)."""
    client.force_login(tenant_admin)
    edit = url("call_flow_edit", tenant, number_id=number.pk)
    client.post(edit, flow_form_post(hours_enabled="on", days=["0", "5"]) | {"after_hours-type": "voicemail"})
    parser = _FormValues()
    parser.feed(client.get(edit).content.decode())
    data = {name: values if len(values) > 1 else values[0] for name, values in parser.values.items()}
    assert client.post(edit, data).status_code == 302
    first, second = CallFlowVersion.objects.for_tenant(tenant).order_by("number")
    assert second.definition == first.definition
    assert [o["digit"] for o in second.definition["menu"]["options"]] == ["1", "9"]
    assert second.definition["hours"]["days"] == [0, 5]
