"""Every tenant page is usable on a phone: from 360 px up nothing is wider than the screen
(tables scroll inside their card), the tenant menu and "Sign out" are reachable through the
navbar's togglers. Real Chromium through Playwright; skipped where either is missing."""

import os
import shutil

import pytest
from django.utils import timezone

from messaging.models import Message
from tenants.models import PhoneNumber
from tests.tenants.factories import PASSWORD, TenantFactory, UserFactory

pytestmark = pytest.mark.slow

sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PAGES = [
    "",
    "messages/",
    "messages/send/",
    "opt-outs/",
    "consent/",
    "numbers/",
    "bulk/",
    "bulk/new/",
    "templates/",
    "settings/",
    "members/",
    "audit/",
]


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium")
    # Playwright's sync API runs an event loop in this thread; the ORM calls around it are ours.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            yield browser
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def portal(live_server, django_user_model):
    tenant = TenantFactory(slug="acme", name="Acme Health Incorporated", messaging_service_sid="MG" + "a" * 32)
    admin = UserFactory(username="alice-admin-with-a-long-name", tenant=tenant, role="admin")
    for i in range(2):
        PhoneNumber.objects.create(
            tenant=tenant, sid=f"PN{i:032d}", phone_number=f"+1415555010{i}", sms=True, synced_at=timezone.now()
        )
    for i in range(3):
        Message.objects.create(
            tenant=tenant,
            direction="outbound",
            sid=f"SM{i:032d}",
            from_number="+14155550100",
            to_number=f"+1415555019{i}",
            body="Your appointment is confirmed for tomorrow at 10:30. Reply STOP to opt out.",
            status="undelivered",
            error_code=30003,
        )
    return live_server.url, tenant, admin


def logged_in_page(browser, base, user, width):
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(base + "/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form [type=submit]")
    return page


@pytest.mark.parametrize("width", [360, 390])
def test_no_page_is_wider_than_a_phone(browser, portal, width):
    base, tenant, admin = portal
    page = logged_in_page(browser, base, admin, width)
    too_wide = []
    for path in PAGES:
        response = page.goto(f"{base}/t/{tenant.slug}/{path}")
        assert response.status == 200, path
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if scroll > inner:
            too_wide.append((path, scroll))
    assert too_wide == []


def test_menu_and_sign_out_are_reachable_at_360(browser, portal):
    base, tenant, admin = portal
    page = logged_in_page(browser, base, admin, 360)
    page.goto(f"{base}/t/{tenant.slug}/")

    assert not page.get_by_role("link", name="Consent", exact=True).is_visible()
    page.get_by_label(f"Open the {tenant.name} menu").click()
    page.get_by_role("link", name="Consent", exact=True).click()
    page.wait_for_url(f"**/t/{tenant.slug}/consent/")

    page.get_by_label("Account and tenants").click()
    sign_out = page.get_by_role("button", name="Sign out")
    sign_out.wait_for(state="visible")
    box = sign_out.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 360
