"""Signing in per role, what support staff see (masked, read-only) and tenant isolation, in
Chromium against the live stack."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import expect
from tests.browser.portal import (
    ADMIN_ONLY_PAGES,
    CONSENTED,
    EXPORTS,
    INBOUND,
    MAIN_PAGES,
    OUR_NUMBERS,
    TENANT_A,
    TENANT_B,
    USERS,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# An E.164 number in page HTML, plain or URL-encoded (e.g. in a link's query string).
E164 = re.compile(r"(?:\+|%2B)([1-9]\d{7,14})")
# Example numbers in search boxes' placeholders are not anyone's.
PLACEHOLDER = re.compile(r'placeholder="[^"]*"')
# Links to pages that only write (support staff and viewers must not be offered them).
WRITE_LINKS = (
    "/messages/send/",
    "/opt-outs/change/",
    "/import/",
    "/consent/new/",
    "/templates/new/",
    "/bulk/new/",
    "/consent-forms/new/",
)


def _numbers_in_clear(html: str) -> set[str]:
    """The E.164 numbers in a page that are not the tenants' own."""
    found = {f"+{digits}" for digits in E164.findall(PLACEHOLDER.sub("", html))}
    return found - set(OUR_NUMBERS.values())


def _page_path(name: str, stack, slug: str = TENANT_A) -> str:
    return MAIN_PAGES[name].format(slug=slug, message=next(iter(stack.messages.values())))


@pytest.mark.parametrize(
    ("role", "landing", "shown"),
    [
        ("admin", rf"/t/{TENANT_A}/$", "admin-a · Admin"),
        ("viewer", rf"/t/{TENANT_A}/$", "viewer-a · Viewer"),
        ("support", r"/$", "support-staff · Support"),
        ("operator", r"/$", "operator"),
        ("admin_b", rf"/t/{TENANT_B}/$", "admin-b · Admin"),
    ],
)
def test_each_role_signs_in_through_the_login_form(portal, role, landing, shown):
    context = portal.new_context()
    try:
        page = portal.sign_in(context, USERS[role][0])
        expect(page).to_have_url(re.compile(re.escape(portal.stack.web) + landing))
        expect(page.locator(".navbar-text")).to_contain_text(shown)
        if role == "operator":
            expect(page.get_by_role("link", name="Operator")).to_be_visible()
    finally:
        context.close()


def test_a_wrong_password_stays_on_the_login_form(portal):
    context = portal.new_context()
    try:
        page = context.new_page()
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(USERS["admin"][0])
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".alert-danger")).to_contain_text("didn't match")
        assert "/accounts/login/" in page.url
    finally:
        context.close()


SUPPORT_PAGES = [name for name in MAIN_PAGES if name not in ADMIN_ONLY_PAGES]
# A customer each list shows from the seed, masked (so the check above is not of an empty page).
SHOWN_MASKED = {"messages": INBOUND[0][0], "opt-outs": INBOUND[2][0], "consent": CONSENTED}


@pytest.mark.parametrize("name", SUPPORT_PAGES)
def test_support_sees_masked_numbers_and_no_write_controls(open_page, stack, name):
    page = open_page("support", _page_path(name, stack))
    expect(page.get_by_text("Support view: read-only, phone numbers masked.")).to_be_visible()
    if name in SHOWN_MASKED:
        expect(page.locator("table")).to_contain_text(SHOWN_MASKED[name][:2] + "******" + SHOWN_MASKED[name][-4:])
    customers = _numbers_in_clear(page.content())
    assert not customers, f"{name}: customer numbers in clear for support staff: {sorted(customers)}"
    posting = page.evaluate(
        # Attributes, not properties: a field named "method" or "action" shadows the property.
        """() => Array.from(document.querySelectorAll("form"))
            .map(f => [(f.getAttribute("method") || "get").toLowerCase(), f.getAttribute("action") || ""])
            .filter(([method, action]) => method === "post" && !action.endsWith("/accounts/logout/"))
            .map(([, action]) => action)"""
    )
    assert not posting, f"{name}: forms that write, shown to support staff: {posting}"
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    writes = [h for h in hrefs if any(part in h for part in WRITE_LINKS)]
    assert not writes, f"{name}: links to write pages, shown to support staff: {writes}"


def test_support_sees_the_history_link_without_the_number(open_page, stack):
    """The number history is reached by an opaque reference, never the number itself."""
    page = open_page("support", _page_path("message-detail", stack))
    page.get_by_role("link", name="History of this number").click()
    page.wait_for_load_state()
    assert not E164.search(page.url), page.url
    customers = _numbers_in_clear(page.content())
    assert not customers, sorted(customers)


@pytest.mark.parametrize("name", list(MAIN_PAGES))
def test_another_tenants_admin_gets_404_on_its_pages(open_page, stack, name):
    """Tenant B's admin asks for tenant A's pages by URL: not found (A's existence is not confirmed)."""
    open_page("admin_b", _page_path(name, stack), expect_status=404)


@pytest.mark.parametrize("name", list(EXPORTS))
def test_another_tenants_admin_gets_404_on_its_exports(portal, name):
    export = EXPORTS[name][1].format(slug=TENANT_A)
    response = portal.context("admin_b").request.get(export)
    assert response.status == 404, f"{export}: {response.status}"
