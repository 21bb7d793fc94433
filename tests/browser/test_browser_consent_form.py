"""The hosted double opt-in, in Chromium: an admin publishes a consent form; a person (no
login) submits a number on the public page, receives the code (read from the sandbox's Verify,
which stands in for the SMS), enters it; the consent ledger shows the double_opt_in event with
its evidence."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import expect
from tests.browser.portal import TENANT_A
from tests.stack import sandbox_get

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PERSON = "+14155550174"
DISCLOSURE = (
    "Clinic A appointment offers by text, up to 2 msgs/month. Msg & data rates may apply. Reply STOP to cancel."
)


def test_a_person_double_opts_in_on_the_public_form(open_page, portal):
    admin = open_page("admin", f"/t/{TENANT_A}/consent-forms/")
    admin.get_by_role("link", name="New form").click()
    admin.get_by_label("Title").fill("Appointment offers")
    admin.get_by_label("Slug").fill("offers")
    admin.get_by_label("Purpose").select_option("marketing")
    admin.get_by_label("Brand").fill("Clinic A")
    admin.get_by_label("Message frequency").fill("Up to 2 msgs/month")
    admin.get_by_label("Disclosure (exact text shown)").fill(DISCLOSURE)
    admin.get_by_role("button", name="Publish").click()
    expect(admin).to_have_url(re.compile(rf"/t/{TENANT_A}/consent-forms/$"))
    expect(admin.locator("table")).to_contain_text(f"/c/{TENANT_A}/offers/")

    person_context = portal.new_context()  # nobody signed in
    person = person_context.new_page()
    try:
        assert person.goto(f"/c/{TENANT_A}/offers/").status == 200
        expect(person.locator("#consent-disclosure")).to_have_text(DISCLOSURE)
        person.get_by_label("Mobile number").fill(PERSON)
        person.get_by_label("I agree to the terms above").check()
        person.get_by_role("button", name="Send me a code").click()
        expect(person.locator("[data-consent-step=code]")).to_be_visible()
        expect(person.get_by_text("+1******0174")).to_be_visible()

        [issued] = sandbox_get(portal.stack, "verify-codes", to=PERSON)
        person.get_by_label("Code").fill(issued["code"])
        person.get_by_role("button", name="Confirm").click()
        expect(person.locator("[data-consent-step=done]")).to_contain_text("you're subscribed")
        agent = person.evaluate("navigator.userAgent")
    finally:
        person_context.close()

    phone = portal.new_context(viewport={"width": 360, "height": 800})
    try:  # the public page fits a phone, which is where people will mostly open it
        small = phone.new_page()
        assert small.goto(f"/c/{TENANT_A}/offers/").status == 200
        widths = small.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], widths
    finally:
        phone.close()

    ledger = open_page("admin", f"/t/{TENANT_A}/consent/?q={PERSON}")
    row = ledger.locator("table tbody tr", has_text=PERSON)
    expect(row).to_contain_text("Marketing")
    expect(row).to_contain_text("Double opt-in")
    row.get_by_role("link", name="Details").click()
    detail = ledger.locator("main")
    expect(detail).to_contain_text("Double opt-in")
    expect(detail).to_contain_text(f"/c/{TENANT_A}/offers/")
    expect(detail).to_contain_text("127.0.0.1")
    expect(detail).to_contain_text(agent)
    expect(detail).to_contain_text(issued["verification_sid"])
    expect(detail).to_contain_text("offers v1")
    expect(detail.locator("blockquote")).to_have_text(DISCLOSURE)
