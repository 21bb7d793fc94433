"""Shared fixtures: two tenants and one user per role, and a helper that signs webhooks
exactly as Twilio does (RequestValidator.compute_signature over the public URL)."""

from __future__ import annotations

import os
import secrets
import socket
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone
from twilio.request_validator import RequestValidator

from sandbox.server import TwilioSandbox
from tenants.models import SUPPORT_GROUP, Membership, PhoneNumber, Tenant

PASSWORD = "correct-horse-battery-staple"


def random_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


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


def make_tenant(slug: str, **fields) -> Tenant:
    defaults = {
        "name": slug.replace("-", " ").title(),
        "account_sid": random_sid("AC"),
        "auth_token": secrets.token_hex(16),
    }
    defaults.update(fields)
    return Tenant.objects.create(slug=slug, **defaults)


def make_number(tenant: Tenant, phone_number: str, *, sms: bool = True, **fields) -> PhoneNumber:
    """A synced number of `tenant`'s inventory (what the send form offers as From)."""
    fields.setdefault("sid", random_sid("PN"))
    return PhoneNumber.objects.create(
        tenant=tenant, phone_number=phone_number, sms=sms, synced_at=timezone.now(), **fields
    )


def make_user(django_user_model, username: str, *, tenant=None, role=None, support=False, superuser=False):
    user = django_user_model.objects.create_user(username=username, password=PASSWORD)
    if tenant is not None:
        Membership.objects.create(user=user, tenant=tenant, role=role)
    if support:
        user.groups.add(Group.objects.get_or_create(name=SUPPORT_GROUP)[0])
    if superuser:
        user.is_superuser = user.is_staff = True
        user.save()
    return user


@pytest.fixture
def tenant(db):
    return make_tenant("acme")


@pytest.fixture
def other_tenant(db):
    return make_tenant("globex")


@pytest.fixture
def tenant_admin(django_user_model, tenant):
    return make_user(django_user_model, "alice-admin", tenant=tenant, role="admin")


@pytest.fixture
def viewer(django_user_model, tenant):
    return make_user(django_user_model, "victor-viewer", tenant=tenant, role="viewer")


@pytest.fixture
def other_admin(django_user_model, other_tenant):
    return make_user(django_user_model, "bob-admin-of-b", tenant=other_tenant, role="admin")


@pytest.fixture
def support_user(django_user_model, db):
    return make_user(django_user_model, "sam-support", support=True)


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
    """Point the client factory (every Twilio domain) and the parent account at the sandbox."""
    settings.TWILIO_API_BASE_URL = sandbox.base_url
    settings.TWILIO_ACCOUNT_SID = sandbox.parent_account_sid
    settings.TWILIO_AUTH_TOKEN = sandbox.parent_auth_token
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
