"""Shared fixtures: two tenants and one user per role (built by tests/*/factories.py), and a
helper that signs webhooks exactly as Twilio does (RequestValidator.compute_signature over the
public URL)."""

from __future__ import annotations

import os
import secrets
import socket
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test.client import Client
from django_otp import DEVICE_ID_SESSION_KEY
from twilio.request_validator import RequestValidator

from sandbox.server import TwilioSandbox
from tests.tenants.factories import TenantFactory, UserFactory, random_sid
from tests.verify.second_factor_helpers import sign_in_device
from verify.second_factor.services import second_factor_devices, second_factor_required


def services_required() -> bool:
    """CI sets REQUIRE_SERVICES=1: a test needing PostgreSQL/Redis must then fail, not skip."""
    return os.environ.get("REQUIRE_SERVICES") == "1"


def redis_reachable(url: str | None = None) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def redis_required(url: str) -> str:
    """`url` when Redis answers there; else the test fails in CI (REQUIRE_SERVICES=1) and is
    skipped locally."""
    if not redis_reachable(url):
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but Redis at {url} is unreachable")
        pytest.skip(f"Redis at {url} is unreachable")
    return url


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(slug="globex")


@pytest.fixture
def tenant_admin(tenant):
    return UserFactory(username="alice-admin", tenant=tenant, role="admin")


@pytest.fixture
def viewer(tenant):
    return UserFactory(username="victor-viewer", tenant=tenant, role="viewer")


@pytest.fixture
def other_admin(other_tenant):
    return UserFactory(username="bob-admin-of-b", tenant=other_tenant, role="admin")


@pytest.fixture
def support_user(db):
    return UserFactory(username="sam-support", support=True)


def sign(url: str, params: dict, token: str, algorithm: str | None = None) -> str:
    return RequestValidator(token).compute_signature(url, params, algorithm)


class TwilioWebhookClient:
    """Posts form-encoded webhooks signed like Twilio signs them."""

    def __init__(self, client):
        self.client = client

    def post(
        self,
        path: str,
        params: dict,
        *,
        token: str,
        url: str | None = None,
        headers: dict | None = None,
        algorithm: str | None = None,
    ):
        signed_url = url or settings.PUBLIC_BASE_URL + path
        signature = sign(signed_url, params, token, algorithm)
        extra = {"HTTP_X_TWILIO_SIGNATURE": signature}
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        return self.client.post(
            path, data=urlencode(params, doseq=True), content_type="application/x-www-form-urlencoded", **extra
        )


@pytest.fixture
def twilio_webhook(client):
    return TwilioWebhookClient(client)


@pytest.fixture
def sandbox():
    """A running local Twilio stand-in (sandbox.server); its parent credentials are on it as
    `parent_auth_token` so tests can act as the platform."""
    parent_token = secrets.token_hex(16)
    running = TwilioSandbox(
        parent_account_sid=random_sid("AC"), parent_auth_token=parent_token, callback_delay=0.05
    ).start()
    running.parent_auth_token = parent_token
    yield running
    running.stop()


@pytest.fixture
def sandbox_settings(settings, sandbox):
    """Point the client factory (every Twilio domain), the parent account and SendGrid at the
    sandbox."""
    settings.TWILIO_API_BASE_URL = sandbox.base_url
    settings.TWILIO_ACCOUNT_SID = sandbox.parent_account_sid
    settings.TWILIO_AUTH_TOKEN = sandbox.parent_auth_token
    # SendGrid too (sandbox/sendgrid.py): mail send, and its signed events' key.
    settings.SENDGRID_API_HOST = sandbox.base_url
    settings.SENDGRID_API_KEY = sandbox.sendgrid_api_key
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = sandbox.sendgrid_public_key
    return settings


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Without Redis the cache is a folder (settings.CACHES): the suite gets its own, so it
    neither reads nor clobbers a running demo's var/cache, nor leaves data in the checkout."""
    from django.conf import settings
    from django.test import override_settings

    if not settings.CACHES["default"]["BACKEND"].endswith("FileBasedCache"):
        yield
        return
    private = {**settings.CACHES["default"], "LOCATION": str(tmp_path_factory.mktemp("cache"))}
    with override_settings(CACHES={"default": private}):
        yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Real hashers cost seconds per test user on a loaded 2-core machine; tests don't test them."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _test_sign_ins_pass_the_second_factor(request, monkeypatch):
    """`client.force_login(user)` and `client.login(...)` skip the login form, so they skip the
    second factor too: the session is marked verified by one of the user's devices (a test
    authenticator app is enrolled for staff who have none), exactly as the code step would mark
    it. Production is unchanged: nothing outside the test client can mark a session. Tests of
    the second factor itself use `@pytest.mark.real_second_factor` (and the real login form)."""
    if request.node.get_closest_marker("real_second_factor"):
        return
    original = Client._login

    def _login(self, user, backend=None):
        original(self, user, backend)
        devices = second_factor_devices(user=user)
        if not devices and not second_factor_required(user):
            return
        session = self.session
        session[DEVICE_ID_SESSION_KEY] = (devices[0] if devices else sign_in_device(user)).persistent_id
        session.save()

    monkeypatch.setattr(Client, "_login", _login)


@pytest.fixture
def postgresql():
    """Skip on SQLite locally; fail in CI (REQUIRE_SERVICES=1), where PostgreSQL is required.

    For races (SQLite serialises writers, so there is none to test), the status fast path (its
    single-statement SQL is PostgreSQL's) and query plans."""
    from django.db import connection

    if connection.vendor != "postgresql":
        if services_required():
            pytest.fail("REQUIRE_SERVICES=1 but the database is not PostgreSQL")
        pytest.skip("needs PostgreSQL")
