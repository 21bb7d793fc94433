"""Subaccount lifecycle and credential rotation against the Twilio sandbox, through the services
and the operator pages: suspend/reactivate/close, 21478, API key and auth token rotation, the
operator pages' access rules, and an audit event for every action."""

from __future__ import annotations

import logging

import pytest
import requests
from django.urls import reverse
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from sandbox.state import Fault
from tenants import lifecycle
from tenants.audit import AuditContext
from tenants.models import AuditEvent, Tenant
from tenants.twilio import TwilioError, tenant_client
from tests.conftest import random_sid
from tests.tenants.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

STATUS_WEBHOOK = "/webhooks/twilio/messaging/status/"


def sandbox_client(sandbox, username, password, account_sid=None) -> Client:
    client = Client(username, password, account_sid=account_sid)
    for domain in ("api", "accounts"):
        getattr(client, domain).base_url = sandbox.base_url
    return client


def sandbox_account(sandbox, sid: str) -> dict:
    accounts = requests.get(sandbox.base_url + "/sandbox/accounts", timeout=5).json()
    return next(a for a in accounts if a["sid"] == sid)


def actions(tenant) -> list[str]:
    return list(AuditEvent.objects.filter(tenant=tenant).order_by("id").values_list("action", flat=True))


@pytest.fixture
def operator(django_user_model):
    return UserFactory(username="olga-operator", superuser=True)


@pytest.fixture
def op_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def live(sandbox_settings, operator):
    """A tenant on a real (sandbox) subaccount, created through the lifecycle service."""
    tenant, _ = lifecycle.tenant_create(slug="acme", name="Acme Dental", audit=AuditContext.of(operator))
    return tenant


@pytest.fixture(autouse=True)
def fast_verification(monkeypatch):
    monkeypatch.setattr(lifecycle, "KEY_VERIFY_DELAY", 0)


def reload(tenant) -> Tenant:
    return Tenant.objects.get(pk=tenant.pk)


def url(name, tenant=None):
    return reverse(f"operator:{name}", kwargs={"slug": tenant.slug} if tenant is not None else {})


# --- create --------------------------------------------------------------------------------------------


def test_tenant_create_makes_a_subaccount_and_audits(sandbox, live, operator):
    account = sandbox_account(sandbox, live.account_sid)
    assert account["friendly_name"] == "Acme Dental" and account["status"] == "active"
    # The stored token is the subaccount's own: it authenticates.
    assert (
        sandbox_client(sandbox, live.account_sid, live.auth_token.reveal()).api.v2010.accounts(live.account_sid).fetch()
    )
    assert actions(live) == ["tenant.create", "subaccount.create"]
    event = AuditEvent.objects.get(tenant=live, action="subaccount.create")
    assert event.actor == operator and event.target == live.account_sid
    assert live.auth_token.reveal() not in str(event.details)


def test_tenant_create_reuses_an_orphan_but_never_another_tenants_subaccount(sandbox_settings, sandbox, operator):
    parent = sandbox_client(sandbox, sandbox.parent_account_sid, sandbox.parent_auth_token)
    orphan = parent.api.v2010.accounts.create(friendly_name="Globex")  # an earlier attempt died here
    globex, sub = lifecycle.tenant_create(slug="globex", name="Globex", audit=AuditContext.of(operator))
    assert not sub.created and globex.account_sid == orphan.sid
    assert "subaccount.reuse" in actions(globex)
    # Same name again: the only "Globex" subaccount belongs to a tenant, so a new one is made.
    second, sub = lifecycle.tenant_create(slug="globex-eu", name="Globex", audit=AuditContext.of(operator))
    assert sub.created and second.account_sid != orphan.sid


def test_tenant_create_refuses_an_existing_slug(sandbox_settings, live, operator):
    with pytest.raises(lifecycle.LifecycleError):
        lifecycle.tenant_create(slug="acme", name="Other", audit=AuditContext.of(operator))


def test_operator_create_page(sandbox_settings, sandbox, op_client):
    response = op_client.post(
        url("tenant_create"), {"name": "Initech", "slug": "initech", "timezone": "America/Chicago"}
    )
    assert response.status_code == 302 and response["Location"] == url("tenant_detail", Tenant(slug="initech"))
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.timezone == "America/Chicago"
    assert sandbox_account(sandbox, tenant.account_sid)["friendly_name"] == "Initech"
    page = op_client.get(response["Location"])
    assert page.status_code == 200 and tenant.auth_token.reveal().encode() not in page.content


def test_operator_create_without_parent_credentials_shows_the_error(settings, op_client):
    settings.TWILIO_ACCOUNT_SID = settings.TWILIO_AUTH_TOKEN = ""
    response = op_client.post(url("tenant_create"), {"name": "X", "slug": "x", "timezone": "UTC"}, follow=True)
    assert b"TWILIO_ACCOUNT_SID" in response.content
    assert not Tenant.objects.filter(slug="x").exists()


# --- suspend, reactivate, close ---------------------------------------------------------------------


def test_suspend_and_reactivate_through_the_pages(sandbox, live, op_client, operator):
    response = op_client.post(url("tenant_suspend", live), {"reason": "unpaid invoice"}, follow=True)
    assert b"suspended at Twilio and here" in response.content
    assert reload(live).status == "suspended" and not reload(live).can_send
    assert sandbox_account(sandbox, live.account_sid)["status"] == "suspended"
    event = AuditEvent.objects.get(tenant=live, action="tenant.suspend")
    assert event.reason == "unpaid invoice" and event.actor == operator and event.ip_address == "127.0.0.1"
    assert event.details == {"from": "active", "to": "suspended"}

    op_client.post(url("tenant_reactivate", live), {})
    assert reload(live).status == "active"
    assert sandbox_account(sandbox, live.account_sid)["status"] == "active"
    assert actions(live)[-2:] == ["tenant.suspend", "tenant.reactivate"]


def test_wrong_state_is_refused_without_calling_twilio(sandbox, live, op_client):
    before = actions(live)
    response = op_client.post(url("tenant_reactivate", live), {}, follow=True)
    assert b"cannot be reactivated" in response.content
    assert actions(live) == before and reload(live).status == "active"


def test_close_needs_the_slug_typed_and_is_final(sandbox, live, op_client, operator):
    sandbox.seed_number(live.account_sid, "+14152300001")
    response = op_client.post(url("tenant_close", live), {"confirm_slug": "acme-typo"}, follow=True)
    assert b"Type the tenant" in response.content
    assert reload(live).status == "active" and sandbox_account(sandbox, live.account_sid)["status"] == "active"

    response = op_client.post(url("tenant_close", live), {"confirm_slug": "acme", "reason": "contract ended"})
    assert response.status_code == 302
    closed = reload(live)
    assert closed.status == "closed" and not closed.can_send
    account = sandbox_account(sandbox, live.account_sid)
    assert account["status"] == "closed" and account["numbers"] == []  # Twilio released them
    assert AuditEvent.objects.get(tenant=live, action="tenant.close").reason == "contract ended"
    # The tenant's records stay readable in the portal.
    assert op_client.get(reverse("tenant_dashboard", kwargs={"tenant_slug": "acme"})).status_code == 200
    assert op_client.get(reverse("message_list", kwargs={"tenant_slug": "acme"})).status_code == 200
    # Nothing reopens it.
    response = op_client.post(url("tenant_reactivate", live), {}, follow=True)
    assert b"cannot be reactivated" in response.content and reload(live).status == "closed"
    with pytest.raises(lifecycle.LifecycleError):
        lifecycle.tenant_suspend(tenant=closed, audit=AuditContext.of(operator))


def test_21478_is_explained_and_nothing_changes_locally(sandbox, live, op_client, operator):
    flagged = requests.post(
        f"{sandbox.base_url}/sandbox/accounts/{live.account_sid}", data={"twilio_suspended": "true"}, timeout=5
    )
    assert flagged.json()["twilio_suspended"] is True
    before = reload(live)

    response = op_client.post(url("tenant_suspend", live), {"reason": "test"}, follow=True)
    assert response.status_code == 200
    assert b"Twilio error 21478" in response.content
    assert b"Twilio itself suspended it" in response.content  # the explanation, not just the code
    after = reload(live)
    assert after.status == "active" and after.updated_at == before.updated_at
    failed = AuditEvent.objects.get(tenant=live, action="tenant.suspend.failed")
    assert failed.details["code"] == 21478 and failed.actor == operator
    assert "tenant.suspend" not in actions(live)

    with pytest.raises(TwilioError) as exc:
        lifecycle.tenant_close(tenant=live, confirm_slug="acme", audit=AuditContext.of(operator))
    assert exc.value.code == 21478 and reload(live).status == "active"


# --- API key rotation ---------------------------------------------------------------------------------


def key_works(sandbox, account_sid, key_sid, secret) -> bool:
    try:
        sandbox_client(sandbox, key_sid, secret, account_sid=account_sid).api.v2010.accounts(account_sid).fetch()
    except TwilioRestException as exc:
        assert (exc.status, exc.code) == (401, 20003)
        return False
    return True


def test_api_key_rotation_end_to_end(sandbox, live, op_client, operator, caplog):
    caplog.set_level(logging.DEBUG)
    # First rotation: the tenant used its auth token; now it has a key, and the client uses it.
    op_client.post(url("api_key_rotate", live))
    first = reload(live)
    first_sid, first_secret = first.api_key_sid, first.api_key_secret.reveal()
    assert first_sid.startswith("SK") and key_works(sandbox, live.account_sid, first_sid, first_secret)
    assert tenant_client(first).username == first_sid

    response = op_client.post(url("api_key_rotate", live), follow=True)
    second = reload(live)
    assert second.api_key_sid != first_sid and not second.pending_api_key_sid
    assert key_works(sandbox, live.account_sid, second.api_key_sid, second.api_key_secret.reveal())
    assert not key_works(sandbox, live.account_sid, first_sid, first_secret)  # revoked: 401
    assert tenant_client(second).api.v2010.accounts(live.account_sid).fetch().sid == live.account_sid
    assert f"the old key {first_sid} is revoked".encode() in response.content

    rotated = AuditEvent.objects.filter(tenant=live, action="credentials.api_key_rotated").order_by("id")
    assert [e.details for e in rotated] == [
        {"old_key_sid": "", "new_key_sid": first_sid},
        {"old_key_sid": first_sid, "new_key_sid": second.api_key_sid},
    ]
    assert all(e.actor == operator for e in rotated)
    # The secrets appear nowhere: not in the page, the audit trail or the log.
    page = op_client.get(url("tenant_detail", live)).content.decode()
    trail = str(list(AuditEvent.objects.values_list("target", "reason", "details")))
    for secret in (first_secret, second.api_key_secret.reveal(), second.auth_token.reveal()):
        assert secret not in page and secret not in response.content.decode()
        assert secret not in trail and secret not in caplog.text


def test_api_key_rotation_rolls_back_when_the_new_key_fails(sandbox, live, operator):
    lifecycle.api_key_rotate(tenant=live, audit=AuditContext.of(operator))
    current = reload(live)
    old_sid, old_secret = current.api_key_sid, current.api_key_secret.reveal()
    # Every verification call of the new key is refused.
    for _ in range(lifecycle.KEY_VERIFY_ATTEMPTS):
        sandbox.add_fault(
            Fault(path_contains=f"/Accounts/{live.account_sid}.json", method="GET", status=401, code=20003)
        )
    with pytest.raises(lifecycle.RotationError) as exc:
        lifecycle.api_key_rotate(tenant=live, audit=AuditContext.of(operator))
    assert "current key stays in use" in str(exc.value)
    after = reload(live)
    assert (after.api_key_sid, after.api_key_secret.reveal()) == (old_sid, old_secret)
    assert not after.pending_api_key_sid and not after.pending_api_key_secret
    assert key_works(sandbox, live.account_sid, old_sid, old_secret)
    parent = sandbox_client(sandbox, sandbox.parent_account_sid, sandbox.parent_auth_token)
    assert [k.sid for k in parent.api.v2010.accounts(live.account_sid).keys.list()] == [old_sid]  # new one deleted
    failed = AuditEvent.objects.get(tenant=live, action="credentials.api_key_rotation.failed")
    assert failed.details["step"] == "verify" and failed.details["new_key_deleted"] is True


def test_api_key_rotation_cleans_up_a_key_left_by_an_interrupted_run(sandbox, live, operator):
    parent = sandbox_client(sandbox, sandbox.parent_account_sid, sandbox.parent_auth_token)
    leftover = parent.api.v2010.accounts(live.account_sid).new_keys.create(friendly_name="interrupted")
    Tenant.objects.filter(pk=live.pk).update(pending_api_key_sid=leftover.sid)
    result = lifecycle.api_key_rotate(tenant=live, audit=AuditContext.of(operator))
    assert [k.sid for k in parent.api.v2010.accounts(live.account_sid).keys.list()] == [result.new_key_sid]


def test_api_key_rotation_needs_an_active_tenant(sandbox, live, operator):
    lifecycle.tenant_suspend(tenant=live, audit=AuditContext.of(operator))
    with pytest.raises(lifecycle.LifecycleError):
        lifecycle.api_key_rotate(tenant=live, audit=AuditContext.of(operator))


def test_old_key_that_cannot_be_revoked_is_reported(sandbox, live, op_client, operator):
    lifecycle.api_key_rotate(tenant=live, audit=AuditContext.of(operator))
    old_sid = reload(live).api_key_sid
    sandbox.add_fault(Fault(path_contains=f"/Keys/{old_sid}.json", method="DELETE", status=500, code=20500))
    response = op_client.post(url("api_key_rotate", live), follow=True)
    assert reload(live).api_key_sid != old_sid
    assert f"the old key {old_sid} could not be revoked".encode() in response.content
    assert AuditEvent.objects.filter(tenant=live, action="credentials.api_key_revoke.failed", target=old_sid).exists()


# --- auth token rotation ------------------------------------------------------------------------------


def post_status(twilio_webhook, tenant, token):
    sid = random_sid("SM")
    params = {"AccountSid": tenant.account_sid, "MessageSid": sid, "MessageStatus": "delivered", "To": "+14155550100"}
    return twilio_webhook.post(STATUS_WEBHOOK, params, token=token).status_code


def test_auth_token_rotation_accepts_both_tokens_in_the_window(sandbox, live, op_client, twilio_webhook, operator):
    old = live.auth_token.reveal()
    assert post_status(twilio_webhook, live, old) == 204

    response = op_client.post(url("auth_token_start", live), follow=True)
    assert b"webhooks signed with either token are accepted" in response.content
    during = reload(live)
    new = during.secondary_auth_token.reveal()
    assert new and new != old and during.auth_token.reveal() == old
    assert during.signing_tokens() == [old, new]
    assert new.encode() not in response.content
    # In the window: a webhook signed with either token is accepted, a wrong one is not.
    assert post_status(twilio_webhook, live, old) == 204
    assert post_status(twilio_webhook, live, new) == 204
    assert post_status(twilio_webhook, live, "0" * 32) == 403

    op_client.post(url("auth_token_promote", live))
    after = reload(live)
    assert after.auth_token.reveal() == new and not after.secondary_auth_token
    assert after.signing_tokens() == [new]
    # After promotion only the new token: at Twilio and at the webhook gateway.
    with pytest.raises(TwilioRestException) as exc:
        sandbox_client(sandbox, live.account_sid, old).api.v2010.accounts(live.account_sid).fetch()
    assert exc.value.status == 401
    assert post_status(twilio_webhook, live, new) == 204
    assert post_status(twilio_webhook, live, old) == 403
    assert actions(live)[-2:] == ["credentials.auth_token_secondary_created", "credentials.auth_token_promoted"]
    trail = str(list(AuditEvent.objects.values_list("target", "reason", "details")))
    assert old not in trail and new not in trail


def test_promote_finishes_when_twilio_already_promoted(sandbox, live, operator):
    """An earlier promote reached Twilio but its answer was lost: the retry finds the new token
    is already the primary and stores it instead of failing forever."""
    lifecycle.auth_token_rotation_start(tenant=live, audit=AuditContext.of(operator))
    new = reload(live).secondary_auth_token.reveal()
    sandbox_client(sandbox, live.account_sid, new).accounts.v1.auth_token_promotion().update()
    lifecycle.auth_token_rotation_promote(tenant=live, audit=AuditContext.of(operator))
    assert reload(live).auth_token.reveal() == new and not reload(live).secondary_auth_token


def test_promote_failure_changes_nothing(sandbox, live, operator):
    lifecycle.auth_token_rotation_start(tenant=live, audit=AuditContext.of(operator))
    sandbox.add_fault(Fault(path_contains="/v1/AuthTokens/Promote", status=500, code=20500))
    with pytest.raises(TwilioError):
        lifecycle.auth_token_rotation_promote(tenant=live, audit=AuditContext.of(operator))
    after = reload(live)
    assert after.auth_token.reveal() == live.auth_token.reveal() and after.secondary_auth_token
    assert AuditEvent.objects.get(tenant=live, action="credentials.auth_token_rotation.failed").details["step"] == (
        "promote"
    )


def test_auth_token_rotation_cancel(sandbox, live, op_client):
    op_client.post(url("auth_token_start", live))
    new = reload(live).secondary_auth_token.reveal()
    op_client.post(url("auth_token_cancel", live))
    assert not reload(live).secondary_auth_token
    with pytest.raises(TwilioRestException):  # deleted at Twilio too
        sandbox_client(sandbox, live.account_sid, new).api.v2010.accounts(live.account_sid).fetch()
    assert "credentials.auth_token_rotation_cancelled" in actions(live)


def test_second_start_is_refused_while_a_rotation_is_open(sandbox, live, operator):
    lifecycle.auth_token_rotation_start(tenant=live, audit=AuditContext.of(operator))
    with pytest.raises(lifecycle.LifecycleError):
        lifecycle.auth_token_rotation_start(tenant=live, audit=AuditContext.of(operator))
    with pytest.raises(lifecycle.LifecycleError):
        lifecycle.auth_token_rotation_cancel(tenant=TenantFactory(slug="globex"), audit=AuditContext.of(operator))


# --- access ---------------------------------------------------------------------------------------------

OPERATOR_GETS = ["tenant_list", "tenant_create", "tenant_detail", "number_erase"]
OPERATOR_POSTS = [
    "tenant_create",
    "tenant_suspend",
    "tenant_reactivate",
    "tenant_close",
    "api_key_rotate",
    "auth_token_start",
    "auth_token_promote",
    "auth_token_cancel",
    "retention_update",
    "number_erase",
]
NEEDS_SLUG = {
    "tenant_detail",
    "number_erase",
    "tenant_suspend",
    "tenant_reactivate",
    "tenant_close",
    "api_key_rotate",
    "auth_token_start",
    "auth_token_promote",
    "auth_token_cancel",
    "retention_update",
}


def operator_url(name, slug="acme"):
    return reverse(f"operator:{name}", kwargs={"slug": slug} if name in NEEDS_SLUG else {})


@pytest.mark.parametrize("role", ["tenant_admin", "viewer", "support_user", "other_admin"])
def test_operator_pages_are_forbidden_to_everyone_but_superusers(request, client, tenant, role):
    user = request.getfixturevalue(role)
    client.force_login(user)
    before = (AuditEvent.objects.count(), Tenant.objects.count(), reload(tenant).status)
    for name in OPERATOR_GETS:
        assert client.get(operator_url(name)).status_code == 403, name
        assert client.get(operator_url(name, slug="no-such-tenant")).status_code == 403, name
    for name in OPERATOR_POSTS:
        data = {"confirm_slug": "acme", "name": "X", "slug": "x", "timezone": "UTC", "phone": "+14155550100"}
        assert client.post(operator_url(name), data).status_code == 403, name
    assert (AuditEvent.objects.count(), Tenant.objects.count(), reload(tenant).status) == before


def test_operator_pages_send_anonymous_users_to_login(client, tenant):
    for name in OPERATOR_GETS:
        response = client.get(operator_url(name))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_operator_pages_404_for_an_unknown_tenant(op_client, tenant):
    assert op_client.get(operator_url("tenant_list")).status_code == 200
    assert op_client.get(operator_url("tenant_detail")).status_code == 200
    assert op_client.get(operator_url("tenant_detail", slug="nope")).status_code == 404
    assert op_client.post(operator_url("tenant_suspend", slug="nope")).status_code == 404


def test_operator_pages_reject_get_for_actions(op_client, tenant):
    assert op_client.get(operator_url("tenant_suspend")).status_code == 405
    assert op_client.get(operator_url("api_key_rotate")).status_code == 405


def test_operator_pages_never_render_secrets(op_client, tenant):
    for name in ("tenant_list", "tenant_detail"):
        content = op_client.get(operator_url(name)).content.decode()
        assert tenant.auth_token.reveal() not in content
        assert tenant.auth_token.masked not in content  # not even the masked tail
