"""The sending policy page: every role reads it (with what the law adds), only admins change it,
every change is validated, saved field by field, audited with old and new values, and is what
the gate then decides with."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from html import unescape
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from messaging.compliance import regions
from messaging.compliance.gate import GateVerdict, gate_check, gate_check_many
from messaging.compliance.policy import sending_policy_get, sending_policy_update
from messaging.models import GateDecision, GateReason, SendingPolicy
from tenants.audit import SYSTEM, AuditContext
from tenants.models import AuditEvent
from tests.messaging.sending_support import FL, SF, grant_marketing, sent_marketing
from tests.tenants.factories import UserFactory

pytestmark = pytest.mark.django_db

LOS_ANGELES = ZoneInfo("America/Los_Angeles")
SEND = GateVerdict(GateDecision.SEND, "", None)

# The form as the page shows it for a new tenant's default policy.
DEFAULTS = {
    "quiet_start": "08:00",
    "quiet_end": "21:00",
    "region_windows": "",
    "frequency_cap": "3",
    "messages_per_second": "1.0",
}


def at_la(hour: int, minute: int = 0, day: int = 10) -> datetime:
    """A Tuesday in June in San Francisco, as UTC."""
    return datetime(2025, 6, day, hour, minute, tzinfo=LOS_ANGELES).astimezone(UTC)


def url(tenant) -> str:
    return reverse("sending_policy", kwargs={"tenant_slug": tenant.slug})


def html(response) -> str:
    return unescape(response.content.decode())


def policy_of(tenant) -> SendingPolicy:
    return SendingPolicy.objects.get(tenant=tenant)


def flashes(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


class _FormFields(HTMLParser):
    """What a browser would post back from the page's form, untouched: inputs (hidden
    `initial-` twins included), checked checkboxes and textareas."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") and attrs["name"] != "csrfmiddlewaretoken":
            if attrs.get("type") == "checkbox":
                if "checked" in attrs:
                    self.fields[attrs["name"]] = attrs.get("value", "on")
            else:
                self.fields[attrs["name"]] = attrs.get("value") or ""
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self.fields[self._textarea] = ""

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea:
            self.fields[self._textarea] = self.fields[self._textarea].removeprefix("\n")
            self._textarea = None


def form_as_loaded(client, tenant) -> dict[str, str]:
    """The sending policy form as an admin's browser loads it now."""
    parser = _FormFields()
    parser.feed(client.get(url(tenant)).content.decode())
    return parser.fields


# --- Reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "support_user"])
def test_read_only_roles_see_the_policy_and_the_law_without_a_form(request, client, tenant, role):
    policy = sending_policy_get(tenant=tenant)
    policy.quiet_start, policy.quiet_end, policy.frequency_cap = time(9, 30), time(19, 45), 4
    policy.region_windows = {"US-CA": ["10:00", "18:00"]}
    policy.messages_per_second = 3
    policy.save()
    client.force_login(request.getfixturevalue(role))
    response = client.get(url(tenant))
    assert response.status_code == 200
    page = html(response)
    assert "09:30–19:45" in page and "US-CA 10:00-18:00" in page and "4 per number per 24 h" in page
    assert ">3<" in page  # messages per second
    # The statutory rules, from the gate's own data.
    assert "Florida (US-FL): 08:00–20:00, at most 3 per 24 h" in page
    assert "Oklahoma (US-OK): 08:00–20:00, at most 3 per 24 h" in page
    assert "France (FR): 08:00–22:00, never on Sundays or public holidays in France" in page
    assert "OTP and transactional messages are never held by quiet hours or caps" in page
    # What is in force: California narrowed by the tenant's line, Florida by the law and the cap.
    assert "California (US-CA)</td><td>10:00–18:00</td><td>4" in page
    assert "Florida (US-FL)</td><td>09:30–19:45</td><td>3" in page
    # No form, nothing to save.
    assert 'name="quiet_start"' not in page and "Save sending policy" not in page
    assert "only this tenant's admins change the sending policy" in page


def test_a_new_tenant_gets_the_default_policy_and_the_admin_its_form(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    response = client.get(url(tenant))
    assert response.status_code == 200
    page = html(response)
    assert 'name="quiet_start" value="08:00"' in page and 'name="quiet_end" value="21:00"' in page
    assert "Save sending policy" in page
    assert "statutory caps still apply" in page and "Florida (US-FL) 3" in page  # the cap's help text
    assert "US long codes take about 1/s" in page and "short codes 100/s" in page
    assert policy_of(tenant).frequency_cap == 3


def test_the_page_is_linked_from_the_navigation_and_the_settings(client, tenant, viewer):
    client.force_login(viewer)
    settings_page = client.get(reverse("tenant_settings", kwargs={"tenant_slug": tenant.slug})).content.decode()
    assert settings_page.count(f'href="{url(tenant)}"') == 2  # sidebar and settings card


def test_the_law_listed_is_the_gates_data(client, tenant, viewer, monkeypatch):
    """Rendered from regions.STATUTORY_*: a new statute shows up without touching the page."""
    monkeypatch.setitem(regions.STATUTORY_CAPS, "US-TX", 2)
    client.force_login(viewer)
    assert "Texas (US-TX): at most 2 per 24 h" in html(client.get(url(tenant)))


def test_stored_region_windows_come_back_as_lines(client, tenant, tenant_admin):
    policy = sending_policy_get(tenant=tenant)
    policy.region_windows = {"US-CA": ["09:00", "20:00"], "FR": ["09:00", "21:00"]}
    policy.save()
    client.force_login(tenant_admin)
    page = html(client.get(url(tenant)))
    assert ">\nFR 09:00-21:00\nUS-CA 09:00-20:00</textarea>" in page


# --- Changing it ---------------------------------------------------------------------------------


def test_admin_changes_are_saved_audited_and_used_by_the_gate(client, tenant, tenant_admin):
    grant_marketing(tenant, SF)
    evening, morning = at_la(20, 30), at_la(8, 30)
    assert gate_check(tenant=tenant, to=SF, purpose="marketing", now=evening) == SEND  # before 21:00
    assert gate_check(tenant=tenant, to=SF, purpose="marketing", now=morning) == SEND
    client.force_login(tenant_admin)
    data = {
        **DEFAULTS,
        "quiet_end": "20:00",
        "frequency_cap": "5",
        "messages_per_second": "3",
        "region_windows": "us-ca 09:00 – 20:00\n\nFR 09:00-21:00\n",
    }

    response = client.post(url(tenant), data)

    assert response.status_code == 302 and response["Location"] == url(tenant)
    [(level, text)] = flashes(response)
    assert level == "success" and "Window closes" in text and "Frequency cap" in text
    policy = policy_of(tenant)
    assert (policy.quiet_start, policy.quiet_end) == (time(8), time(20))
    assert (policy.frequency_cap, policy.messages_per_second) == (5, 3.0)
    assert policy.region_windows == {"US-CA": ["09:00", "20:00"], "FR": ["09:00", "21:00"]}  # what the gate reads
    event = AuditEvent.objects.get(tenant=tenant, action="sending_policy.update")
    assert event.actor == tenant_admin
    assert event.details == {
        "quiet_end": ["21:00", "20:00"],
        "region_windows": [{}, {"US-CA": ["09:00", "20:00"], "FR": ["09:00", "21:00"]}],
        "frequency_cap": [3, 5],
        "messages_per_second": [1.0, 3.0],
    }
    # The gate decides with the new policy: 20:30 is now after the window, 08:30 before California's.
    tomorrow_nine = at_la(9, day=11)
    assert gate_check_many(tenant=tenant, recipients=[SF], purpose="marketing", now=evening) == {
        SF: GateVerdict(GateDecision.DEFER, GateReason.QUIET_HOURS, tomorrow_nine)
    }
    assert gate_check(tenant=tenant, to=SF, purpose="marketing", now=morning) == GateVerdict(
        GateDecision.DEFER, GateReason.QUIET_HOURS, at_la(9)
    )
    assert gate_check(tenant=tenant, to=SF, purpose="otp", now=evening) == SEND  # OTPs never wait
    # Widening the window again lets the evening message go.
    response = client.post(url(tenant), {**data, "quiet_end": "21:00", "region_windows": ""})
    assert response.status_code == 302
    assert gate_check(tenant=tenant, to=SF, purpose="marketing", now=evening) == SEND
    latest = AuditEvent.objects.filter(action="sending_policy.update").latest("id")
    assert latest.details["quiet_end"] == ["20:00", "21:00"] and set(latest.details) == {"quiet_end", "region_windows"}


def test_the_service_writes_only_the_changed_columns(tenant):
    sending_policy_get(tenant=tenant)
    # The row as it is now (the rate changed since the form was shown) is what is compared.
    SendingPolicy.objects.filter(tenant=tenant).update(messages_per_second=7)
    changed = sending_policy_update(
        tenant=tenant, changes={"frequency_cap": 2, "messages_per_second": 7.0}, audit=SYSTEM
    )
    assert changed == ["frequency_cap"]
    assert (policy_of(tenant).frequency_cap, policy_of(tenant).messages_per_second) == (2, 7.0)
    event = AuditEvent.objects.get(action="sending_policy.update")
    assert event.details == {"frequency_cap": [3, 2]} and event.actor is None


def test_nothing_changed_writes_nothing(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    client.get(url(tenant))
    response = client.post(url(tenant), DEFAULTS)
    assert response.status_code == 302
    assert flashes(response) == [("info", "Nothing changed: the sending policy is as it was.")]
    assert not AuditEvent.objects.filter(action="sending_policy.update").exists()


def test_an_all_day_window_set_elsewhere_survives_an_untouched_save(client, tenant, tenant_admin):
    """The form shows HH:MM; sending 23:59 back unchanged keeps 23:59:59.999999."""
    policy = sending_policy_get(tenant=tenant)
    policy.quiet_start, policy.quiet_end = time(0), time(23, 59, 59, 999999)
    policy.save()
    client.force_login(tenant_admin)
    response = client.post(url(tenant), {**DEFAULTS, "quiet_start": "00:00", "quiet_end": "23:59"})
    assert response.status_code == 302 and flashes(response)[0][0] == "info"
    assert policy_of(tenant).quiet_end == time(23, 59, 59, 999999)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"quiet_start": "20:00"}, "20:00-20:00 never opens"),
        ({"quiet_start": "22:00", "quiet_end": "07:00"}, "22:00-07:00 never opens"),
        ({"quiet_end": "24:00"}, "Enter a valid time"),
        ({"quiet_start": "08:00:30"}, "Enter hours and minutes only (HH:MM)"),
        ({"frequency_cap": "51"}, "less than or equal to 50"),
        ({"frequency_cap": "-1"}, "greater than or equal to 0"),
        ({"messages_per_second": "0"}, "Enter a rate above 0 and at most 100"),
        ({"messages_per_second": "100.5"}, "Enter a rate above 0 and at most 100"),
        ({"region_windows": "Florida 8-20"}, "“Florida” is not a region code"),
        ({"region_windows": "Florida 8-20"}, "times are written HH:MM"),
        (
            {"region_windows": "US-CA 09:00-20:00\nus-ca 10:00-19:00"},
            "Line 2 (“us-ca 10:00-19:00”): US-CA is listed twice",
        ),
        ({"region_windows": "US-CA 20:00-09:00"}, "the window must open before it closes (20:00 is not before 09:00)"),
        ({"region_windows": "US-CA 09:00-09:00"}, "the window must open before it closes"),
        ({"region_windows": "US-CA 9-20"}, "times are written HH:MM"),
        ({"region_windows": "US-CA"}, "write a region, then its window"),
        ({"region_windows": "USA-CA 09:00-20:00"}, "“USA-CA” is not a region code"),
        ({"region_windows": "US-ZZ 09:00-20:00"}, "US-ZZ is not a US state"),
        ({"region_windows": "ZZ 09:00-20:00"}, "ZZ is not a country code"),
        ({"region_windows": "FR-75 09:00-20:00"}, "only US and Canadian numbers tell their state or province"),
        # The gate would ignore a line that misses the window in force there: refuse it instead.
        (
            {"region_windows": "US-FL 20:30-21:00"},
            "US-FL 20:30-21:00 misses the window that applies in Florida (US-FL) otherwise, 08:00-20:00 "
            "(your window, the law's 08:00-20:00 and your other lines): the gate would ignore it there.",
        ),
        ({"region_windows": "US-CA 21:30-22:30"}, "(your window and your other lines): the gate would ignore it"),
        # A country line is checked in the subdivisions the law sets apart under it too.
        (
            {"quiet_end": "21:00", "region_windows": "US 20:15-21:00"},
            "US 20:15-21:00 misses the window that applies in Florida (US-FL) otherwise, 08:00-20:00 "
            "(your window, the law's 08:00-20:00 and your other lines)",
        ),
        ({"quiet_end": "21:00", "region_windows": "US 20:15-21:00"}, "in Oklahoma (US-OK) otherwise"),
        # A window that misses the law's altogether somewhere: the law's would apply there instead.
        (
            {"quiet_start": "20:30", "quiet_end": "23:00"},
            "20:30-23:00 misses the law's window altogether in Florida (US-FL) and Oklahoma (US-OK), where it "
            "is 08:00-20:00: no marketing message could go there within your hours.",
        ),
        (
            {"quiet_start": "06:00", "quiet_end": "08:00"},
            "06:00-08:00 misses the law's window altogether in Saint Barthélemy (BL), France (FR), French Guiana "
            "(GF), Guadeloupe (GP), Saint Martin (MF), Martinique (MQ), Saint Pierre And Miquelon (PM), "
            "Reunion (RE) and Mayotte (YT), where it is 08:00-22:00; in Florida (US-FL) and Oklahoma (US-OK), "
            "where it is 08:00-20:00",
        ),
        # Digits other than ASCII ones are refused, not a server error.
        ({"region_windows": "US-CA \u0669:\u0660\u0660-20:00"}, "times are written HH:MM"),
        ({"region_windows": "US-CA \u0660\u0669:\u0660\u0660-20:00"}, "times are written HH:MM"),
        ({"region_windows": "US-CA 09:00-\uff12\uff10:00"}, "times are written HH:MM"),
        ({"quiet_start": "\u0660\u0669:\u0660\u0660"}, "Enter a valid time"),
        ({"quiet_end": "\u0661\u0669:00"}, "Enter a valid time"),
    ],
)
def test_invalid_input_is_refused_with_a_clear_error_and_no_write(client, tenant, tenant_admin, changes, error):
    client.force_login(tenant_admin)
    client.get(url(tenant))
    before = SendingPolicy.objects.filter(tenant=tenant).values().get()
    response = client.post(url(tenant), {**DEFAULTS, "quiet_end": "20:00", **changes})
    assert response.status_code == 200
    assert error in html(response)
    assert SendingPolicy.objects.filter(tenant=tenant).values().get() == before
    assert not AuditEvent.objects.filter(action="sending_policy.update").exists()


def test_a_no_break_space_still_separates_a_region_from_its_window(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    response = client.post(url(tenant), {**DEFAULTS, "region_windows": "US-CA\u00a009:00-20:00"})
    assert response.status_code == 302
    assert policy_of(tenant).region_windows == {"US-CA": ["09:00", "20:00"]}


# --- Two admins at once ----------------------------------------------------------------------------


@pytest.fixture
def second_admin(django_user_model, tenant):
    return UserFactory(username="bea-admin", tenant=tenant, role="admin")


def save_as(user, tenant, **edits: str) -> None:
    """Another admin, in another browser, loads the page and saves `edits`."""
    browser = Client()
    browser.force_login(user)
    assert browser.post(url(tenant), {**form_as_loaded(browser, tenant), **edits}).status_code == 302


def test_the_form_carries_the_values_it_was_loaded_with(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    loaded = form_as_loaded(client, tenant)
    assert {name for name in loaded if name.startswith("initial-")} == {
        "initial-quiet_start",
        "initial-quiet_end",
        "initial-region_windows",
        "initial-frequency_cap",
        "initial-informational_follows_marketing_rules",
        "initial-messages_per_second",
    }
    response = client.post(url(tenant), loaded)
    assert flashes(response) == [("info", "Nothing changed: the sending policy is as it was.")]


def test_a_stale_form_writes_only_what_its_admin_edited(client, tenant, tenant_admin, second_admin):
    """A loads the page (1/s); B sets 5/s; A changes only the cap: B's rate stays, and the audit
    credits A with the cap only."""
    client.force_login(tenant_admin)
    loaded = form_as_loaded(client, tenant)
    assert loaded["messages_per_second"] == "1.0"
    save_as(second_admin, tenant, messages_per_second="5")

    response = client.post(url(tenant), {**loaded, "frequency_cap": "2"})

    assert response.status_code == 302
    assert flashes(response) == [("success", "Sending policy saved: Frequency cap.")]
    assert (policy_of(tenant).frequency_cap, policy_of(tenant).messages_per_second) == (2, 5.0)
    mine = AuditEvent.objects.get(action="sending_policy.update", actor=tenant_admin)
    assert mine.details == {"frequency_cap": [3, 2]}


def test_an_edit_that_another_admin_changed_meanwhile_is_audited_against_the_database(
    client, tenant, tenant_admin, second_admin
):
    client.force_login(tenant_admin)
    loaded = form_as_loaded(client, tenant)
    save_as(second_admin, tenant, messages_per_second="5")
    assert client.post(url(tenant), {**loaded, "messages_per_second": "3"}).status_code == 302
    assert policy_of(tenant).messages_per_second == 3.0
    assert AuditEvent.objects.get(actor=tenant_admin).details == {"messages_per_second": [5.0, 3.0]}


def test_region_lines_are_checked_against_the_window_another_admin_saved_meanwhile(
    client, tenant, tenant_admin, second_admin
):
    """A's line fits the 08:00-21:00 A loaded, not the 08:00-20:00 B saved since: refused."""
    client.force_login(tenant_admin)
    loaded = form_as_loaded(client, tenant)
    save_as(second_admin, tenant, quiet_end="20:00")

    response = client.post(url(tenant), {**loaded, "region_windows": "US-CA 20:15-21:00"})

    assert response.status_code == 200
    assert "US-CA 20:15-21:00 misses the window that applies in California (US-CA) otherwise, 08:00-20:00" in html(
        response
    )
    assert policy_of(tenant).region_windows == {} and policy_of(tenant).quiet_end == time(20)
    assert not AuditEvent.objects.filter(actor=tenant_admin).exists()


def test_two_edits_fine_alone_cannot_make_a_window_that_never_opens(client, tenant, tenant_admin, second_admin):
    """A opens at 19:00 while B, on a page loaded before, closes at 10:00: the second save is
    checked against the first (under the row's lock) and refused."""
    client.force_login(tenant_admin)
    loaded = form_as_loaded(client, tenant)
    save_as(second_admin, tenant, quiet_start="19:00")

    response = client.post(url(tenant), {**loaded, "quiet_end": "10:00"})

    assert response.status_code == 200
    assert (policy_of(tenant).quiet_start, policy_of(tenant).quiet_end) == (time(19), time(21))
    assert not AuditEvent.objects.filter(actor=tenant_admin).exists()


def test_the_service_itself_refuses_a_window_that_never_opens(tenant, tenant_admin):
    """Whatever validated before: the last check is under the lock, where a concurrent save
    can no longer slip in between."""
    from django.core.exceptions import ValidationError

    from messaging.compliance.policy import sending_policy_update

    sending_policy_update(tenant=tenant, changes={"quiet_start": time(19)}, audit=AuditContext.of(tenant_admin))
    with pytest.raises(ValidationError, match="19:00-10:00 never opens"):
        sending_policy_update(tenant=tenant, changes={"quiet_end": time(10)}, audit=AuditContext.of(tenant_admin))
    assert (policy_of(tenant).quiet_start, policy_of(tenant).quiet_end) == (time(19), time(21))
    assert AuditEvent.objects.filter(action="sending_policy.update").count() == 1


# --- Saved before the form refused it --------------------------------------------------------------


def test_the_page_flags_a_window_that_misses_the_law_in_red(client, tenant, viewer):
    policy = sending_policy_get(tenant=tenant)
    policy.quiet_start, policy.quiet_end = time(20, 30), time(23)
    policy.save()
    client.force_login(viewer)
    page = html(client.get(url(tenant)))
    assert 'id="policy-set-aside"' in page and "the gate sets it aside in the regions marked below" in page
    assert '<tr class="table-danger"><td>Florida (US-FL)</td><td>08:00–20:00</td>' in page
    assert "Your window 20:30–23:00 misses the law's 08:00–20:00 here: the gate sends in the law's window" in page
    assert "<tr><td>France (FR)</td><td>20:30–22:00</td>" in page  # not flagged: it overlaps


def test_the_page_flags_a_region_line_the_gate_ignores(client, tenant, tenant_admin):
    policy = sending_policy_get(tenant=tenant)
    policy.region_windows = {"US": ["20:15", "21:00"]}
    policy.save()
    client.force_login(tenant_admin)
    page = html(client.get(url(tenant)))
    assert '<tr class="table-danger"><td>Florida (US-FL)</td><td>08:00–20:00</td>' in page
    assert "Your line for US would close the window here: the gate ignores it." in page
    assert "<tr><td>United States (US)</td><td>20:15–21:00</td>" in page


def test_a_window_that_never_opens_is_flagged_and_no_phantom_lines(client, tenant, viewer):
    """A row saved elsewhere with start after end: the page names that, and doesn't invent
    warnings about region lines the tenant never wrote."""
    SendingPolicy.objects.filter(pk=sending_policy_get(tenant=tenant).pk).update(
        quiet_start=time(19), quiet_end=time(10)
    )
    client.force_login(viewer)
    page = html(client.get(url(tenant)))
    assert 'id="policy-never-opens"' in page and "19:00–10:00 never opens" in page
    assert "Your line for" not in page


def test_a_sound_policy_flags_nothing(client, tenant, viewer):
    sending_policy_get(tenant=tenant)
    client.force_login(viewer)
    page = html(client.get(url(tenant)))
    assert "table-danger" not in page and "policy-set-aside" not in page


# --- Who may change it ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "support_user"])
def test_read_only_roles_cannot_change_it(request, client, tenant, role):
    sending_policy_get(tenant=tenant)
    client.force_login(request.getfixturevalue(role))
    response = client.post(url(tenant), {**DEFAULTS, "frequency_cap": "0"})
    assert response.status_code == 403
    assert policy_of(tenant).frequency_cap == 3
    assert not AuditEvent.objects.exists()


def test_another_tenants_admin_finds_nothing(client, tenant, other_tenant, other_admin):
    sending_policy_get(tenant=tenant)
    client.force_login(other_admin)
    assert client.get(url(tenant)).status_code == 404
    assert client.post(url(tenant), {**DEFAULTS, "frequency_cap": "0"}).status_code == 404
    assert policy_of(tenant).frequency_cap == 3
    assert not AuditEvent.objects.exists()
    # Their own page shows their own policy, and saving it leaves tenant A's alone.
    assert client.post(url(other_tenant), {**DEFAULTS, "frequency_cap": "9"}).status_code == 302
    assert (policy_of(other_tenant).frequency_cap, policy_of(tenant).frequency_cap) == (9, 3)


def test_the_florida_cap_still_applies_when_the_tenant_sets_none(client, tenant, tenant_admin):
    """What the cap's help text promises: 0 is no cap of the tenant's own, not of the law's."""
    client.force_login(tenant_admin)
    assert client.post(url(tenant), {**DEFAULTS, "frequency_cap": "0"}).status_code == 302
    grant_marketing(tenant, FL)
    now = datetime(2025, 6, 10, 12, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)
    for hours in (1, 2, 3):
        sent_marketing(tenant, FL, accepted_at=now - timedelta(hours=hours))
    assert gate_check(tenant=tenant, to=FL, purpose="marketing", now=now).reason == GateReason.FREQUENCY_CAP
