"""The browser suite's fixtures: one live stack (tests/stack.py) and one headless Chromium for
the whole suite, one browser context per role, each signed in through the login form.

Both live for the `tests/browser` package only, not the session: Playwright's sync API keeps an
event loop running on the main thread while it is started, and Django refuses ORM calls from a
thread with a running loop, so the rest of the suite must not run beside it. The stack takes a
Redis database of its own (12, both broker and cache), apart from the suite's and from
test_end_to_end's stack (11 and 10).

Chromium is the system's (Debian's `chromium`); Playwright's own browser download is not used.
Without it (or without Playwright) the suite skips, unless REQUIRE_SERVICES=1.

Static files: production serves STATIC_ROOT from the front proxy, not from Django, so the
browser contexts play that proxy, answering /static/ from a `collectstatic` of the stack's own.
The portal runs without TLS, so its Secure cookies rely on Chromium treating 127.0.0.1 as a
secure context, as it does.
"""

from __future__ import annotations

import json
import mimetypes
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import requests

try:  # a dev extra: without it the suite skips (see _chromium)
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover
    expect = sync_playwright = None

from tests.browser.portal import INBOUND, OUR_NUMBERS, OUTBOUND, TENANT_A, USERS
from tests.conftest import services_required
from tests.stack import PASSWORD, SECOND_FACTOR_PAGE, USED_TOTP_CODES, Stack, sandbox_get, stack_start
from tests.verify.second_factor_helpers import fresh_totp_code

DESKTOP = {"width": 1280, "height": 900}
SETTLE_SECONDS = 90


def _chromium() -> str:
    """The system Chromium's path, or a skip (a failure when the services are required)."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if sync_playwright is None:
        found = None
    if not found:
        reason = "no Chromium (apt-get install chromium) or no Playwright (pip install -e '.[dev]')"
        if services_required():
            pytest.fail(reason + ", and REQUIRE_SERVICES=1")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="package")
def chromium_path() -> str:
    return _chromium()


def _settled(stack: Stack, account_sid: str) -> bool:
    """The seeded outbound messages are final at the sandbox and the portal took every callback."""
    messages = [m for m in sandbox_get(stack, "messages", account_sid=account_sid) if m["to"] in OUTBOUND]
    if sorted(m["status"] for m in messages) != sorted(OUTBOUND.values()):
        return False
    callbacks = [w for w in sandbox_get(stack, "webhooks") if w["params"].get("MessageStatus") in OUTBOUND.values()]
    return len(callbacks) == len(OUTBOUND) and all(w["status_code"] and w["status_code"] < 300 for w in callbacks)


@pytest.fixture(scope="package")
def stack(chromium_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-stack")
    stack = Stack(tmp, name="browser", redis_dbs=(12, 12))
    try:
        stack.env["STATIC_ROOT"] = str(tmp / "static")
        stack_start(stack)
        stack.manage("collectstatic", "--noinput", "-v", "0")
        seeded = json.loads(stack.python("-m", "tests.browser.seed"))
        stack.accounts, stack.messages = seeded["accounts"], seeded["messages"]
        stack.totp_secrets.update(seeded["totp_secrets"])
        for sender, body in INBOUND:
            inbound = requests.post(
                f"{stack.sandbox}/sandbox/inbound", data={"From": sender, "To": OUR_NUMBERS[TENANT_A], "Body": body}
            )
            assert inbound.ok and inbound.json()["status_code"] == 200, inbound.text
        stack.wait_until(
            "the seeded messages to settle", lambda: _settled(stack, stack.accounts[TENANT_A]), timeout=SETTLE_SECONDS
        )
        yield stack
    finally:
        stack.stop()


class Portal:
    """The stack as Chromium sees it: contexts that reach it (static files included), signed
    in per role and kept for the whole suite."""

    def __init__(self, stack: Stack, browser) -> None:
        self.stack, self.browser = stack, browser
        self.static_root = Path(stack.env["STATIC_ROOT"]).resolve()
        self._contexts: dict[tuple[str, int], object] = {}

    def _serve_static(self, route, request) -> None:
        relative = unquote(urlsplit(request.url).path).removeprefix("/static/")
        file = (self.static_root / relative).resolve()
        if self.static_root in file.parents and file.is_file():
            content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            route.fulfill(path=str(file), headers={"Content-Type": content_type})
        else:
            route.fulfill(status=404, body="not found")

    def new_context(self, *, viewport: dict | None = None, storage_state=None):
        context = self.browser.new_context(
            base_url=self.stack.web, viewport=viewport or DESKTOP, storage_state=storage_state, accept_downloads=True
        )
        context.set_default_timeout(20_000)
        # A whole page load (its CSS and JS included) on a CI machine whose two cores also run the
        # stack's gunicorn, worker and database: twice (once per run) a load took over 20 s.
        context.set_default_navigation_timeout(60_000)
        context.route(f"{self.stack.web}/static/**", self._serve_static)
        return context

    def sign_in(self, context, username: str):
        """Sign in through the login form, as a person would, and through the second factor when
        the user has one (staff: the code from their authenticator app's key); the page lands
        where Django sends it."""
        page = context.new_page()
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        assert "/accounts/login/" not in page.url, f"{username} could not sign in:\n{page.content()[:2000]}"
        if urlsplit(page.url).path == SECOND_FACTOR_PAGE:
            page.get_by_label("Code").fill(fresh_totp_code(self.stack.totp_secrets[username], USED_TOTP_CODES))
            with page.expect_navigation():
                page.get_by_role("button", name="Verify").click()
            assert urlsplit(page.url).path != SECOND_FACTOR_PAGE, f"{username}: code refused:\n{page.content()[:2000]}"
        return page

    def context(self, role: str, *, width: int = DESKTOP["width"]):
        """The signed-in context of `role` (see portal.USERS) at this viewport width."""
        key = (role, width)
        if key not in self._contexts:
            if width == DESKTOP["width"]:
                context = self.new_context()
                self.sign_in(context, USERS[role][0]).close()
            else:
                signed_in = self.context(role).storage_state()
                context = self.new_context(viewport={"width": width, "height": 800}, storage_state=signed_in)
            self._contexts[key] = context
        return self._contexts[key]

    def close(self) -> None:
        for context in self._contexts.values():
            context.close()


@pytest.fixture(scope="package")
def portal(stack, chromium_path):
    expect.set_options(timeout=20_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=["--no-sandbox"])
        portal = Portal(stack, browser)
        try:
            yield portal
        finally:
            portal.close()
            browser.close()


@pytest.fixture
def open_page(portal):
    """`open_page(role, path, width=1280)`: a new page of that role's context at `path`; closed
    after the test."""
    pages = []

    def open_(role: str, path: str, *, width: int = DESKTOP["width"], expect_status: int | None = 200):
        page = portal.context(role, width=width).new_page()
        pages.append(page)
        response = page.goto(path)
        if expect_status is not None:
            assert response.status == expect_status, f"{role} GET {path}: {response.status}\n{page.content()[:2000]}"
        return page

    yield open_
    for page in pages:
        page.close()
