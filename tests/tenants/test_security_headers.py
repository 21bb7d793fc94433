"""Browser-side hardening: a Content-Security-Policy on every response that allows scripts and
styles from our static files only, so no template may hold an inline <script>, an on*= handler,
a style= attribute or a <style> block; https enforced in production except for the webhooks and
the health probe; HSTS on https answers."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from tests.tenants.factories import UserFactory
from tests.tenants.test_isolation import PAGES, VOICE_SANDBOX_URLS, ctx, tenant_url  # noqa: F401  (ctx is a fixture)

TEMPLATES = Path(django_settings.BASE_DIR) / "templates"
# What the policy forbids in markup: handlers, style attributes, inline scripts, style blocks.
HANDLER_ATTR = re.compile(r"""<[^>]*\son[a-z]+\s*=""", re.IGNORECASE)
STYLE_ATTR = re.compile(r"""<[^>]*\sstyle\s*=""", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"""<script(?![^>]*\ssrc=)[^>]*>""", re.IGNORECASE)
STYLE_BLOCK = re.compile(r"""<style[\s>]""", re.IGNORECASE)


class InlineCode(HTMLParser):
    """Collects what a strict CSP would block in a rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = {name.lower(): value for name, value in attrs}
        for name in names:
            if name.startswith("on") or name == "style":
                self.found.append(f"<{tag} {name}=…>")
        if tag == "script" and not names.get("src") and names.get("type", "text/javascript") != "application/json":
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style> block")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def test_no_template_holds_inline_code():
    offenders = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        source = template.read_text()
        for label, pattern in (
            ("on*= handler", HANDLER_ATTR),
            ("style= attribute", STYLE_ATTR),
            ("inline <script>", INLINE_SCRIPT),
            ("<style> block", STYLE_BLOCK),
        ):
            for match in pattern.finditer(source):
                line = source.count("\n", 0, match.start()) + 1
                offenders.append(f"{template.relative_to(TEMPLATES)}:{line}: {label}")
    assert not offenders, "\n".join(offenders)


def test_the_scanner_sees_what_it_must():
    assert inline_code('<button onclick="x()">') == ["<button onclick=…>"]
    assert inline_code('<p style="color: red">') == ["<p style=…>"]
    assert inline_code("<script>alert(1)</script>") == ["<script> without src"]
    assert inline_code('<script src="/static/js/portal.js"></script>') == []


def _page_urls(ctx):  # noqa: F811
    """Every tenant page the admin of tenant A can open (the isolation matrix's), HTML only."""
    for name, (kwargs, expected) in sorted(PAGES.items()):
        # A recording's audio is streamed from Twilio (the isolation matrix runs it on a sandbox).
        if expected["admin_a"] == 200 and name not in VOICE_SANDBOX_URLS:
            kwargs = kwargs(ctx) if callable(kwargs) else kwargs
            yield name, tenant_url(name, ctx["tenant"], **kwargs)


def _assert_strict(name: str, response) -> None:
    policy = response.get("Content-Security-Policy", "")
    assert "script-src 'self'" in policy and "style-src 'self'" in policy, (name, policy)
    if response.streaming or not response["Content-Type"].startswith("text/html"):
        return
    found = inline_code(response.content.decode())
    assert not found, (name, found)


def test_every_portal_page_renders_without_inline_code(client, ctx):  # noqa: F811
    client.force_login(ctx["users"]["admin_a"])
    seen = 0
    for name, url in _page_urls(ctx):
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        _assert_strict(name, response)
        seen += 1
    assert seen >= 30
    for name, url in (("home", "/"), ("404", "/t/acme/no-such-page/")):
        _assert_strict(name, client.get(url))


def test_support_operator_and_sign_in_pages_render_without_inline_code(client, ctx):  # noqa: F811
    client.force_login(ctx["users"]["support"])
    _assert_strict("support_overview", client.get("/support/"))
    _assert_strict("403", client.get(tenant_url("message_send", ctx["tenant"])))
    client.force_login(UserFactory(username="root-operator", superuser=True))
    for name in ("tenant_list", "tenant_create"):
        _assert_strict(name, client.get(reverse(f"operator:{name}")))
    slug = ctx["tenant"].slug
    _assert_strict("tenant_detail", client.get(reverse("operator:tenant_detail", kwargs={"slug": slug})))
    _assert_strict("number_erase", client.get(reverse("operator:number_erase", kwargs={"slug": slug})))
    client.logout()
    _assert_strict("login", client.get("/accounts/login/"))
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        response = client.post("/accounts/login/", {"username": "alice-admin", "password": "wrong"})
    assert response.status_code == 429
    _assert_strict("locked_out", response)


def test_the_policy_is_enforced_not_report_only(client):
    response = client.get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    assert "Content-Security-Policy-Report-Only" not in response
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


@pytest.fixture
def production_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    return Client()  # built after the override: SecurityMiddleware reads its settings once


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https(production_https):
    response = production_https.get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"


@pytest.mark.django_db
def test_webhooks_and_the_health_probe_are_not_redirected(production_https):
    for path in (
        "/webhooks/twilio/messaging/inbound/",
        "/webhooks/twilio/messaging/status/",
        "/webhooks/twilio/voice/status/",
        "/webhooks/sendgrid/events/",
    ):
        response = production_https.post(path, {"AccountSid": "AC" + "0" * 32})
        assert response.status_code != 301, path  # refused unsigned, but answered where it was sent
    assert production_https.get("/healthz").status_code in (200, 503)


@pytest.mark.django_db
def test_https_answers_carry_hsts(production_https):
    response = production_https.get("/accounts/login/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
