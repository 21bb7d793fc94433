"""The Twilio client factory (tenants/twilio.py) against the local sandbox over real HTTP.

`TWILIO_API_BASE_URL` must redirect EVERY product domain the portal uses (api, verify,
messaging, accounts), for auth-token and API-key clients alike, and every failure must come out
as one typed `TwilioError` that never carries a credential.
"""

from __future__ import annotations

import logging
import socket

import pytest
import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from tenants.models import Tenant
from tenants.twilio import TwilioError, parent_client, tenant_client, twilio_errors
from tenants.twilio_errors import explain
from tests.tenants.factories import TenantFactory

HANDSET = "+14155550123"
MAGIC_FROM = "+15005550006"


def last_url(client) -> str:
    """The URL the client's HTTP layer really requested last (after the base-URL rewrite)."""
    return client.http_client._test_only_last_request.url


def add_fault(sandbox, **fault) -> None:
    requests.post(sandbox.base_url + "/sandbox/faults", json=fault, timeout=5).raise_for_status()


@pytest.fixture
def subaccount(sandbox_settings):
    """A subaccount the parent created at the sandbox, as Twilio hands it out."""
    return parent_client().api.v2010.accounts.create(friendly_name="Acme Dental")


@pytest.fixture
def sub_tenant(db, subaccount):
    return TenantFactory(slug="acme", account_sid=subaccount.sid, auth_token=subaccount.auth_token)


def exercise_domains(client, sandbox, *, account_sid: str) -> None:
    """api, verify and messaging through `client`; each must land on the sandbox."""
    base = sandbox.base_url
    sent = client.messages.create(to=HANDSET, from_=MAGIC_FROM, body="hello from the portal")
    assert sent.sid.startswith("SM") and sent.account_sid == account_sid
    assert last_url(client) == f"{base}/2010-04-01/Accounts/{account_sid}/Messages.json"
    assert sent.sid in [m.sid for m in client.messages.list(limit=20)]
    stored = requests.get(f"{base}/sandbox/messages", params={"account_sid": account_sid}, timeout=5).json()
    assert [m["sid"] for m in stored] == [sent.sid]

    verify_service = client.verify.v2.services.create(friendly_name="Acme login")
    assert verify_service.sid.startswith("VA")
    assert verify_service.sid in [s.sid for s in client.verify.v2.services.list()]
    assert last_url(client).startswith(f"{base}/v2/Services")

    messaging_service = client.messaging.v1.services.create(friendly_name="Acme reminders")
    assert messaging_service.sid.startswith("MG")
    assert messaging_service.sid in [s.sid for s in client.messaging.v1.services.list()]
    assert last_url(client).startswith(f"{base}/v1/Services")


@pytest.mark.django_db
def test_auth_token_client_reaches_sandbox_on_every_domain(sandbox, sub_tenant, subaccount):
    client = tenant_client(sub_tenant)
    assert client.username == subaccount.sid

    exercise_domains(client, sandbox, account_sid=subaccount.sid)

    secondary = client.accounts.v1.secondary_auth_token().create()
    assert secondary.account_sid == subaccount.sid
    assert last_url(client) == f"{sandbox.base_url}/v1/AuthTokens/Secondary"
    # The sandbox issued that token: it now authenticates the subaccount there.
    sub_tenant.auth_token = secondary.secondary_auth_token
    assert tenant_client(sub_tenant).api.v2010.accounts(subaccount.sid).fetch().sid == subaccount.sid


@pytest.mark.django_db
def test_api_key_client_reaches_sandbox_on_every_domain(sandbox, sub_tenant, subaccount):
    key = tenant_client(sub_tenant).new_keys.create(friendly_name="portal")
    sub_tenant.api_key_sid, sub_tenant.api_key_secret = key.sid, key.secret
    # A wrong auth token proves the key, not the token, authenticates from here on.
    sub_tenant.auth_token = "0" * 32
    sub_tenant.full_clean()
    sub_tenant.save()
    sub_tenant.refresh_from_db()

    client = tenant_client(sub_tenant)
    assert (client.username, client.account_sid) == (key.sid, subaccount.sid)

    exercise_domains(client, sandbox, account_sid=subaccount.sid)

    # Accounts domain: the sandbox, like Twilio, refuses standard API keys there. The 403
    # comes from the sandbox, so the request was redirected too.
    with pytest.raises(TwilioError) as exc, twilio_errors():
        client.accounts.v1.secondary_auth_token().create()
    assert (exc.value.status, exc.value.code, exc.value.retryable) == (403, 20403, False)
    assert last_url(client) == f"{sandbox.base_url}/v1/AuthTokens/Secondary"


def test_parent_client_without_account_sid_is_a_clear_error(settings):
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = "f" * 32
    with pytest.raises(TwilioError) as exc:
        parent_client()
    assert "TWILIO_ACCOUNT_SID" in str(exc.value)
    assert exc.value.code is None and exc.value.retryable is False


@pytest.mark.django_db
def test_rest_exception_becomes_typed_terminal_error(sandbox, sub_tenant):
    client = tenant_client(sub_tenant)
    with pytest.raises(TwilioError) as exc, twilio_errors():
        client.messages.create(to="+15005550001", from_=MAGIC_FROM, body="x")
    err = exc.value
    assert isinstance(err.__cause__, TwilioRestException)
    assert (err.code, err.status, err.retryable) == (21211, 400, False)
    assert err.explanation and err.explanation == explain(21211)
    assert "21211" in str(err)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "code"),
    [(429, 20429), (500, 20500), (503, 20503)],
)
def test_throttling_and_server_errors_are_retryable(sandbox, sub_tenant, status, code):
    add_fault(sandbox, path_contains="/Messages.json", method="POST", status=status, code=code)
    client = tenant_client(sub_tenant)
    with pytest.raises(TwilioError) as exc, twilio_errors():
        client.messages.create(to=HANDSET, from_=MAGIC_FROM, body="x")
    assert (exc.value.code, exc.value.status, exc.value.retryable) == (code, status, True)
    # The fault was used up: the same call now succeeds, so the error really came from it.
    assert client.messages.create(to=HANDSET, from_=MAGIC_FROM, body="x").sid.startswith("SM")


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 500), (401, 20003)])
def test_list_failures_are_typed_like_any_other(sandbox_settings, sandbox, db, status, code):
    # The SDK raises a bare TwilioException("Unable to fetch page", response) for lists;
    # a 500 without a Twilio code must still read as retryable HTTP 500.
    tenant = TenantFactory(slug="acme")
    add_fault(sandbox, path_contains="/Messages.json", method="GET", status=status, code=code)
    with pytest.raises(TwilioError) as exc, twilio_errors():
        tenant_client(tenant).messages.list(limit=1)
    assert (exc.value.code, exc.value.status) == (code, status)
    assert exc.value.retryable is (status != 401)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_connection_refused_is_unreachable_and_retryable(settings):
    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{closed_port()}"
    tenant = TenantFactory(slug="acme")
    with pytest.raises(TwilioError) as exc, twilio_errors():
        tenant_client(tenant).messages.create(to=HANDSET, from_=MAGIC_FROM, body="x")
    err = exc.value
    assert isinstance(err.__cause__, requests.ConnectionError)
    assert (err.code, err.status, err.retryable) == (None, None, True)
    assert str(err).startswith("Twilio unreachable")


def test_service_exception_becomes_typed_terminal_error():
    problem = TwilioServiceException(
        type_uri="https://www.twilio.com/docs/api/errors/60200",
        title="Invalid parameter",
        status=400,
        code=60200,
        detail="Invalid parameter: To",
    )
    with pytest.raises(TwilioError) as exc, twilio_errors():
        raise problem
    err = exc.value
    assert err.__cause__ is problem
    assert (err.code, err.status, err.retryable) == (60200, 400, False)
    assert err.message == "Invalid parameter: To"
    assert err.explanation == explain(60200)


def test_errors_outside_twilio_are_not_swallowed():
    with pytest.raises(ZeroDivisionError), twilio_errors():
        1 / 0  # noqa: B018 - the point is the exception


@pytest.mark.django_db
def test_auth_token_never_in_error_text_or_logs(sandbox, sub_tenant, settings, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="twilio.http_client")  # quiet by default; loudest here
    token = sub_tenant.auth_token.reveal()
    wrong_token = "9" * 32
    # Same subaccount, wrong token (unsaved: the factory reads only its credentials).
    impostor = Tenant(slug="impostor", account_sid=sub_tenant.account_sid, auth_token=wrong_token)
    client = tenant_client(sub_tenant)
    add_fault(sandbox, path_contains="/Messages.json", status=429, code=20429)  # the first call's
    calls = [
        lambda: client.messages.create(to=HANDSET, from_=MAGIC_FROM, body="x"),
        lambda: client.messages.create(to="+15005550001", from_=MAGIC_FROM, body="x"),
        lambda: tenant_client(impostor).messages.list(limit=1),
    ]
    errors: list[TwilioError] = []
    for call in calls:
        with pytest.raises(TwilioError) as exc, twilio_errors():
            call()
        errors.append(exc.value)
    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(TwilioError) as exc, twilio_errors():
        tenant_client(sub_tenant).messages.list(limit=1)
    errors.append(exc.value)

    assert [e.code for e in errors] == [20429, 21211, 20003, None]
    assert "BEGIN Twilio API Request" in caplog.text  # the SDK really logged every request
    for secret in (token, wrong_token):
        assert secret not in caplog.text
        for err in errors:
            for text in (str(err), repr(err), err.message, err.explanation):
                assert secret not in text
