"""Opt-outs and consent, recorded through their forms in Chromium."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import expect
from tests.browser.portal import TENANT_A

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _row(page, phone: str):
    return page.locator("table tbody tr", has_text=phone)


def test_an_admin_opts_a_number_out_and_back_in(open_page):
    phone = "+14155550171"
    page = open_page("admin", f"/t/{TENANT_A}/opt-outs/")
    form = page.locator("form[method=post]", has=page.get_by_role("button", name="Record"))
    form.get_by_label("Phone").fill(phone)
    form.get_by_label("Opt out (stop all messages)").check()
    form.get_by_label("Reason").fill("Asked by phone, ticket #123")
    form.get_by_role("button", name="Record").click()
    page.wait_for_load_state()
    page.goto(f"/t/{TENANT_A}/opt-outs/")
    expect(_row(page, phone)).to_contain_text("Opted out")

    _row(page, phone).get_by_role("link", name="Opt back in…").click()
    expect(page.get_by_label("Opt back in")).to_be_checked()
    page.get_by_label("Reason").fill("Asked to be opted back in, ticket #124")
    page.get_by_role("button", name="Record").click()
    page.wait_for_load_state()
    page.goto(f"/t/{TENANT_A}/opt-outs/")
    expect(_row(page, phone)).to_contain_text("Opted in")


def test_an_admin_captures_a_marketing_consent(open_page):
    phone = "+14155550172"
    page = open_page("admin", f"/t/{TENANT_A}/consent/")
    page.get_by_role("link", name="Record consent").click()
    page.get_by_label("Phone").fill(phone)
    page.get_by_label("Purpose").select_option("marketing")
    page.get_by_label("Method").select_option("paper")
    page.get_by_label("Source").fill("Front desk form, clinic A")
    page.get_by_label("Disclosure text").fill("I agree to receive appointment offers by SMS. Reply STOP to stop.")
    page.get_by_role("button", name="Record consent").click()
    expect(page).to_have_url(re.compile(rf"/t/{TENANT_A}/consent/\d+/$"))
    page.goto(f"/t/{TENANT_A}/consent/")
    row = _row(page, phone)
    expect(row).to_contain_text("Marketing")
    expect(row).to_contain_text("Granted")
    expect(row).to_contain_text("Paper")
