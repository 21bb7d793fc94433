"""The message log and the send form in Chromium: filter, open a timeline, send and watch the
status arrive from Twilio (the sandbox's signed callbacks) while the page stays open."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import expect
from tests.browser.portal import INBOUND, OUR_NUMBERS, TENANT_A

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_filter_the_log_and_open_a_message_timeline(open_page):
    page = open_page("admin", f"/t/{TENANT_A}/messages/")
    page.get_by_label("Status").select_option(label="Undelivered")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]status=undelivered"))
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("+15005550010")
    expect(rows.first).to_contain_text("30003")
    rows.first.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(rf"/t/{TENANT_A}/messages/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Outbound message")
    expect(page.locator("#message-status")).to_have_text("Undelivered")
    timeline = page.locator(".card", has_text="Status timeline")
    expect(timeline).to_contain_text("Sent")
    expect(timeline).to_contain_text("Undelivered")
    expect(timeline).to_contain_text("30003")

    # By number and direction: one customer's text, and nothing else.
    sender, body = INBOUND[0]
    page.goto(f"/t/{TENANT_A}/messages/")
    page.get_by_label("Direction").select_option(label="Inbound")
    page.get_by_label("Number (from or to)").fill(sender)
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(sender)
    expect(rows.first).to_contain_text(body)
    page.get_by_role("link", name="Clear").click()
    expect(rows).not_to_have_count(1)


def test_a_message_sent_from_the_form_reaches_delivered_while_the_page_is_open(open_page):
    to = "+14155550164"
    page = open_page("admin", f"/t/{TENANT_A}/messages/send/")
    page.get_by_label("To").fill(to)
    page.get_by_label("Purpose").select_option("transactional")
    sender = page.locator("[name=sender]")
    if sender.evaluate("e => e.tagName") == "SELECT":
        sender.select_option(OUR_NUMBERS[TENANT_A])
    else:
        sender.fill(OUR_NUMBERS[TENANT_A])
    page.get_by_label("Body").fill("Your appointment is confirmed for Tuesday 10:00.")
    expect(page.locator("#gate-preview")).to_contain_text("Passes the compliance gate")
    page.get_by_role("button", name="Send").click()
    expect(page).to_have_url(re.compile(rf"/t/{TENANT_A}/messages/\d+/$"))
    # The page watches its own status; the test never reloads it.
    expect(page.locator("#message-status")).to_have_text("Delivered", timeout=60_000)
    timeline = page.locator(".card", has_text="Status timeline")
    expect(timeline).to_contain_text("Delivered")
    expect(page.locator("dl")).to_contain_text(to)
