"""Contract test: every request shape the portal sends to Twilio, validated by Prism against
Twilio's official OpenAPI specs (twilio-oai), one Prism process per spec.

The sandbox answers what we taught it; Prism answers what Twilio documents. Prism answers 422
(with the violations) to a request that breaks the spec, and lists lesser request problems in
its `sl-violations` header: a missing required parameter, a wrong format (a StatusCallback that
isn't a URI, a malformed SID in the path), a value outside an enum. It does not catch parameter
names the spec doesn't know (Twilio's schemas allow additional properties). Prism runs WITHOUT
`--errors`: that flag also turns violations in Prism's *own* mock responses into 500s, and
Twilio's examples break their own `format: uri` (relative `uri`, `first_page_uri`), so every
list call would fail for reasons that aren't ours; response violations are ignored here.

The clients come from the real factory (`tenants.twilio`); only its HTTP client is swapped for
one that routes each Twilio domain to its Prism process by path. Verify v2 has no spec loaded:
no portal code calls Verify yet.

Needs the prism binary (`.ci/run` installs it into .ci/node/, or set PRISM_BIN) and the specs
(TWILIO_OAI_DIR, by default `../shared/twilio-oai/` beside the checkout); skipped without them
unless REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from twilio.http.http_client import TwilioHttpClient

import tenants.twilio as twilio_factory
from tests.conftest import services_required
from tests.tenants.factories import TenantFactory

pytestmark = pytest.mark.slow

#: twilio-oai's spec folder: TWILIO_OAI_DIR, else a checkout of it beside this repository.
SPEC_DIR = Path(os.environ.get("TWILIO_OAI_DIR") or Path(settings.BASE_DIR).parent / "shared" / "twilio-oai")
SPECS = {
    "api": "twilio_api_v2010.json",
    "messaging": "twilio_messaging_v1.json",
    "accounts": "twilio_accounts_v1.json",
}
STARTUP_SECONDS = 90


def _spec_for(path: str) -> str:
    if path.startswith("/2010-04-01/"):
        return "api"
    if path.startswith("/v1/AuthTokens"):
        return "accounts"
    if path.startswith("/v1/Services"):
        return "messaging"
    raise AssertionError(f"No Twilio spec loaded for {path}: add it to SPECS and _spec_for")


def _unavailable(reason: str):
    if services_required():
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def _prism_bin() -> Path | None:
    candidate = os.environ.get("PRISM_BIN") or str(Path(settings.BASE_DIR) / ".ci/node/node_modules/.bin/prism")
    return Path(candidate) if Path(candidate).is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def prism_ports():
    """One Prism mock per spec, started once for the module and stopped at its end."""
    if not all((SPEC_DIR / name).is_file() for name in SPECS.values()):
        _unavailable(f"Twilio OpenAPI specs not found in {SPEC_DIR} (set TWILIO_OAI_DIR)")
    binary = _prism_bin()
    if binary is None:
        _unavailable("prism not installed: npm install --prefix .ci/node @stoplight/prism-cli@5, or set PRISM_BIN")
    ports, processes = {}, []
    try:
        for domain, name in SPECS.items():
            ports[domain] = _free_port()
            processes.append(
                subprocess.Popen(
                    [
                        str(binary),
                        "mock",
                        "-p",
                        str(ports[domain]),
                        "-h",
                        "127.0.0.1",
                        str(SPEC_DIR / name),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while not all(_listening(p) for p in ports.values()):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                pytest.fail(f"Prism did not start within {STARTUP_SECONDS}s")
            time.sleep(0.3)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class PrismHttpClient(TwilioHttpClient):
    """Routes each Twilio domain to its Prism process and records what came back."""

    def __init__(self, ports: dict[str, int], calls: list) -> None:
        super().__init__(timeout=15)
        self.ports, self.calls = ports, calls

    def request(
        self, method, url, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        parts = urlsplit(url)
        target = urlunsplit(("http", f"127.0.0.1:{self.ports[_spec_for(parts.path)]}", parts.path, parts.query, ""))
        response = super().request(method, target, params, data, headers, auth, timeout, allow_redirects)
        self.calls.append((method, parts.path, response.status_code, response.text, dict(response.headers or {})))
        return response


@pytest.fixture
def calls(prism_ports, monkeypatch, settings):
    """Every request of the test, checked against the spec when the test ends."""
    recorded: list = []
    monkeypatch.setattr(twilio_factory, "_http_client", lambda: PrismHttpClient(prism_ports, recorded))
    settings.TWILIO_ACCOUNT_SID = sid("AC")
    settings.TWILIO_AUTH_TOKEN = secrets.token_hex(16)
    settings.PUBLIC_BASE_URL = "https://portal.example.com"
    yield recorded
    assert recorded, "the test sent nothing"
    for method, path, status, text, headers in recorded:
        assert status != 422, f"{method} {path} breaks Twilio's spec: {text}"
        violations = json.loads(headers.get("sl-violations") or "[]")
        ours = [v for v in violations if v.get("location", [""])[0] != "response"]
        assert not ours, f"{method} {path} breaks Twilio's spec: {ours}"


def sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme", api_key_sid=sid("SK"), api_key_secret=secrets.token_hex(16))


# --- Messages (messaging/delivery/, tenants/retention.py) ---------------------------------------


@pytest.mark.parametrize("via", ["service", "from"])
def test_message_create(calls, tenant, via):
    from messaging.delivery.attempts import _create_params
    from messaging.models import Message

    message = Message(
        pk=42,
        tenant=tenant,
        to_number="+14155550100",
        body="Your code is 123456",
        messaging_service_sid=sid("MG") if via == "service" else "",
        from_number="+14155550199" if via == "from" else "",
    )
    params = _create_params(message)
    assert "status_callback" in params
    twilio_factory.tenant_client(tenant).messages.create(**params)


def test_messages_list_filters(calls, tenant):
    from messaging.delivery.attempts import RECONCILE_LIMIT

    client = twilio_factory.tenant_client(tenant)
    since = datetime.now(UTC) - timedelta(minutes=5)
    client.messages.page(to="+14155550100", date_sent_after=since, page_size=RECONCILE_LIMIT)
    client.messages.page(to="+14155550100", page_size=RECONCILE_LIMIT)


def test_message_redact(calls, tenant):
    client = twilio_factory.tenant_client(tenant)
    client.api.v2010.accounts(tenant.account_sid).messages(sid("SM")).update(body="")


# --- Numbers (tenants/numbers.py) --------------------------------------------------------------


def test_numbers_list_update_create_delete(calls, tenant):
    from tenants import numbers

    client = twilio_factory.tenant_client(tenant)
    want = numbers.webhook_urls()
    client.incoming_phone_numbers.page(page_size=numbers.SYNC_PAGE_SIZE)
    client.incoming_phone_numbers(sid("PN")).update(
        sms_url=want["sms_url"],
        sms_method="POST",
        voice_url=want["voice_url"],
        voice_method="POST",
        status_callback=want["status_callback"],
        status_callback_method="POST",
    )
    client.incoming_phone_numbers.create(
        phone_number="+14155550123",
        sms_url=want["sms_url"],
        sms_method="POST",
        voice_url=want["voice_url"],
        voice_method="POST",
        status_callback=want["status_callback"],
        status_callback_method="POST",
    )
    client.incoming_phone_numbers(sid("PN")).delete()


def test_available_numbers_search(calls, tenant):
    from tenants import numbers

    numbers.numbers_search_available(tenant=tenant, country="US", area_code="415", sms=True, voice=True, mms=True)
    numbers.numbers_search_available(tenant=tenant, country="CA")


def test_messaging_services(calls, tenant):
    from tenants import numbers

    client = twilio_factory.tenant_client(tenant)
    service_sid = sid("MG")
    client.messaging.v1.services.page(page_size=numbers.SYNC_PAGE_SIZE)
    client.messaging.v1.services(service_sid).phone_numbers.page(page_size=numbers.SYNC_PAGE_SIZE)
    client.messaging.v1.services(service_sid).update(
        inbound_request_url=numbers.webhook_urls()["sms_url"], inbound_method="POST"
    )


# --- Subaccounts, keys and auth tokens (tenants/lifecycle.py, tenants/monitoring.py) -----------


def test_accounts(calls, tenant):
    accounts = twilio_factory.parent_client().api.v2010.accounts
    accounts.create(friendly_name="Acme")
    accounts.page(friendly_name="Acme")
    accounts(tenant.account_sid).fetch()
    for status in ("suspended", "active", "closed"):
        accounts(tenant.account_sid).update(status=status)


def test_keys(calls, tenant):
    account = twilio_factory.tenant_auth_token_client(tenant).api.v2010.accounts(tenant.account_sid)
    account.new_keys.create(friendly_name="commsportal acme 2026-01-01 00:00")
    account.keys(sid("SK")).delete()


def test_auth_tokens(calls, tenant):
    client = twilio_factory.tenant_auth_token_client(tenant)
    client.accounts.v1.secondary_auth_token().create()
    client.accounts.v1.auth_token_promotion().update()
    client.accounts.v1.secondary_auth_token().delete()


def test_the_harness_catches_a_request_twilio_would_refuse(prism_ports, monkeypatch, tenant):
    """Guards the guard: a malformed SID and a non-URL SmsUrl must come back as 422."""
    from twilio.base.exceptions import TwilioRestException

    recorded: list = []
    monkeypatch.setattr(twilio_factory, "_http_client", lambda: PrismHttpClient(prism_ports, recorded))
    with pytest.raises(TwilioRestException):
        twilio_factory.tenant_client(tenant).incoming_phone_numbers("PN123").update(sms_url="not a url")
    assert recorded[0][2] == 422 and "SmsUrl" in recorded[0][3]
