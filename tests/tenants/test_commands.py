"""Operator commands: `create_tenant` and `create_portal_user` are idempotent, keep secrets out
of argv and stdout, refuse bad input before writing anything, and leave an audit trail."""

from __future__ import annotations

import io
import secrets

import pytest
import requests
from django.core.management import CommandError, call_command
from django.db import connection

from tenants.models import SUPPORT_GROUP, AuditEvent, Membership, Tenant
from tenants.twilio import parent_client, tenant_client
from tests.conftest import random_sid
from tests.tenants.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_token_from_environment(monkeypatch):
    # create_tenant falls back to $TWILIO_SUBACCOUNT_AUTH_TOKEN; a developer's shell must not leak in.
    monkeypatch.delenv("TWILIO_SUBACCOUNT_AUTH_TOKEN", raising=False)


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def raw_column(tenant: Tenant, column: str) -> str:
    """What the database really holds (the model layer hands back decrypted Secrets)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM tenants_tenant WHERE id = %s", [tenant.pk])
        return cursor.fetchone()[0]


def sandbox_accounts_named(sandbox, name: str) -> list[dict]:
    accounts = requests.get(sandbox.base_url + "/sandbox/accounts", timeout=5).json()
    return [a for a in accounts if a["friendly_name"] == name]


# --------------------------------------------------------------------------- create_tenant


def test_create_tenant_creates_then_updates_only_given_fields():
    sid, token = random_sid("AC"), secrets.token_hex(16)
    out = run("create_tenant", "acme", "--name", "Acme Dental", "--account-sid", sid, "--auth-token", token)
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.name, tenant.account_sid, tenant.auth_token.reveal()) == ("Acme Dental", sid, token)
    assert tenant.keyword_replies == Tenant.KeywordReplies.TWILIO
    assert "Created tenant acme" in out and token not in out
    assert token not in raw_column(tenant, "auth_token")  # encrypted at rest

    out = run("create_tenant", "acme", "--timezone", "Europe/Paris", "--keyword-replies", "portal")
    tenant.refresh_from_db()
    assert (tenant.timezone, tenant.keyword_replies) == ("Europe/Paris", "portal")
    assert (tenant.name, tenant.account_sid, tenant.auth_token.reveal()) == ("Acme Dental", sid, token)
    assert "Updated tenant acme" in out and "keyword_replies, timezone" in out
    assert "name" not in out.split("fields:")[1]

    # The same command again changes nothing, says so, and writes no audit event.
    events = AuditEvent.objects.filter(tenant=tenant).count()
    out = run("create_tenant", "acme", "--name", "Acme Dental", "--account-sid", sid, "--auth-token", token)
    assert "unchanged" in out
    assert Tenant.objects.count() == 1
    assert AuditEvent.objects.filter(tenant=tenant).count() == events
    assert list(AuditEvent.objects.filter(tenant=tenant).values_list("action", flat=True)) == [
        "tenant.update",
        "tenant.create",
    ]


def test_create_tenant_reads_token_from_stdin(monkeypatch):
    token = secrets.token_hex(16)
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    out = run("create_tenant", "acme", "--name", "Acme", "--account-sid", random_sid("AC"), "--auth-token", "-")
    assert Tenant.objects.get(slug="acme").auth_token.reveal() == token
    assert token not in out


def test_create_tenant_empty_stdin_is_refused(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="standard input"):
        run("create_tenant", "acme", "--name", "Acme", "--account-sid", random_sid("AC"), "--auth-token", "-")
    assert not Tenant.objects.exists()


def test_create_tenant_reads_token_from_environment(monkeypatch):
    token = secrets.token_hex(16)
    monkeypatch.setenv("ACME_TOKEN", token)
    run("create_tenant", "acme", "--name", "Acme", "--account-sid", random_sid("AC"), "--auth-token", "env:ACME_TOKEN")
    assert Tenant.objects.get(slug="acme").auth_token.reveal() == token

    monkeypatch.delenv("ACME_TOKEN")
    with pytest.raises(CommandError, match="ACME_TOKEN"):
        run("create_tenant", "acme", "--auth-token", "env:ACME_TOKEN")


@pytest.mark.parametrize("sid", ["AC123", "SK" + "0" * 32, "AC" + "G" * 32])
def test_create_tenant_rejects_invalid_account_sid(sid):
    with pytest.raises(CommandError) as exc:
        run("create_tenant", "acme", "--name", "Acme", "--account-sid", sid, "--auth-token", "x" * 32)
    assert "account_sid" in str(exc.value) and "AC followed by 32 hex digits" in str(exc.value)
    assert not Tenant.objects.exists() and not AuditEvent.objects.exists()


def test_create_tenant_new_tenant_needs_credentials():
    with pytest.raises(CommandError, match="--account-sid and --auth-token"):
        run("create_tenant", "acme", "--name", "Acme", "--account-sid", random_sid("AC"))
    with pytest.raises(CommandError, match="--name"):
        run("create_tenant", "acme", "--account-sid", random_sid("AC"), "--auth-token", "x")
    assert not Tenant.objects.exists()


def test_create_subaccount_creates_stores_and_reuses(sandbox_settings, sandbox):
    out = run("create_tenant", "acme", "--name", "Acme Dental", "--create-subaccount")
    tenant = Tenant.objects.get(slug="acme")
    [account] = sandbox_accounts_named(sandbox, "Acme Dental")
    assert tenant.account_sid == account["sid"]
    assert account["owner_account_sid"] == sandbox.parent_account_sid
    # The stored token is the subaccount's real one: it authenticates at the sandbox.
    assert tenant_client(tenant).api.v2010.accounts(tenant.account_sid).fetch().friendly_name == "Acme Dental"
    token = tenant.auth_token.reveal()
    assert token not in raw_column(tenant, "auth_token")
    assert token not in out and f"Created subaccount {account['sid']}" in out

    out = run("create_tenant", "acme", "--name", "Acme Dental", "--create-subaccount")
    assert "reusing" in out and token not in out
    assert len(sandbox_accounts_named(sandbox, "Acme Dental")) == 1
    assert Tenant.objects.get(slug="acme").account_sid == account["sid"]

    # Renaming while re-running must not create another subaccount either.
    run("create_tenant", "acme", "--name", "Acme Dental Group", "--create-subaccount")
    tenant.refresh_from_db()
    assert (tenant.name, tenant.account_sid) == ("Acme Dental Group", account["sid"])
    assert len(requests.get(sandbox.base_url + "/sandbox/accounts", timeout=5).json()) == 2  # parent + one


def test_create_subaccount_after_half_finished_run_reuses_it(sandbox_settings, sandbox):
    # A previous run created the subaccount at Twilio, then died before saving the tenant.
    orphan = parent_client().api.v2010.accounts.create(friendly_name="Globex Retail")
    assert not Tenant.objects.exists()

    out = run("create_tenant", "globex", "--name", "Globex Retail", "--create-subaccount")
    tenant = Tenant.objects.get(slug="globex")
    assert tenant.account_sid == orphan.sid
    assert tenant.auth_token.reveal() == orphan.auth_token
    assert f"Found existing subaccount {orphan.sid}" in out and orphan.auth_token not in out
    assert len(sandbox_accounts_named(sandbox, "Globex Retail")) == 1


def test_create_subaccount_without_parent_credentials_is_a_clear_error(settings):
    settings.TWILIO_ACCOUNT_SID = ""
    with pytest.raises(CommandError, match="TWILIO_ACCOUNT_SID"):
        run("create_tenant", "acme", "--name", "Acme", "--create-subaccount")
    assert not Tenant.objects.exists()


def test_create_subaccount_and_explicit_credentials_exclude_each_other(sandbox_settings):
    with pytest.raises(CommandError, match="not both"):
        run("create_tenant", "acme", "--name", "Acme", "--create-subaccount", "--account-sid", random_sid("AC"))


# --------------------------------------------------------------------------- create_portal_user


@pytest.fixture
def tenants():
    return TenantFactory(slug="acme"), TenantFactory(slug="globex")


def test_create_portal_user_with_memberships_in_several_tenants(django_user_model, tenants):
    acme, globex = tenants
    out = run(
        "create_portal_user", "dana", "--password", "s3cret-Passphrase",
        "--tenant", "acme", "--role", "admin", "--tenant", "globex", "--role", "viewer",
    )  # fmt: skip
    user = django_user_model.objects.get(username="dana")
    assert user.check_password("s3cret-Passphrase")
    assert {(m.tenant.slug, m.role) for m in user.memberships.all()} == {("acme", "admin"), ("globex", "viewer")}
    assert "Created user dana" in out and "acme: admin (added)" in out and "s3cret" not in out
    events = AuditEvent.objects.filter(action="membership.added", target="dana")
    assert {(e.tenant.slug, e.details["role"]) for e in events} == {("acme", "admin"), ("globex", "viewer")}


def test_role_belongs_to_the_tenant_written_before_it(django_user_model, tenants):
    run("create_portal_user", "erin", "--tenant", "acme", "--tenant", "globex", "--role", "admin")
    user = django_user_model.objects.get(username="erin")
    assert {(m.tenant.slug, m.role) for m in user.memberships.all()} == {("acme", "viewer"), ("globex", "admin")}
    assert not user.has_usable_password()  # no --password: nobody can log in with a guessed one

    with pytest.raises(CommandError, match="--role must follow"):
        run("create_portal_user", "frank", "--role", "admin", "--tenant", "acme")
    assert not django_user_model.objects.filter(username="frank").exists()


def test_rerun_changes_role_and_reports_it(django_user_model, tenants):
    UserFactory(username="erin", tenant=tenants[0], role="admin")  # acme keeps an admin
    run("create_portal_user", "dana", "--password", "pw-one-Long", "--tenant", "acme", "--role", "admin")
    out = run("create_portal_user", "dana", "--tenant", "acme", "--role", "viewer")
    user = django_user_model.objects.get(username="dana")
    assert Membership.objects.get(user=user).role == "viewer"
    assert "Updated user dana" in out and "acme: viewer (changed)" in out
    assert user.check_password("pw-one-Long")  # no --password: left alone
    changed = AuditEvent.objects.get(action="membership.changed", target="dana")
    assert (changed.tenant.slug, changed.details) == (
        "acme",
        {"role": "viewer", "old_role": "admin", "new_role": "viewer"},
    )

    out = run("create_portal_user", "dana", "--tenant", "acme", "--role", "viewer")
    assert "acme: viewer (unchanged)" in out
    assert AuditEvent.objects.filter(target="dana").count() == 2


def test_password_from_stdin(django_user_model, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin-Passphrase\n"))
    out = run("create_portal_user", "gail", "--password", "-")
    assert django_user_model.objects.get(username="gail").check_password("from-stdin-Passphrase")
    assert "from-stdin" not in out


def test_support_flag(django_user_model):
    out = run("create_portal_user", "sam", "--support")
    user = django_user_model.objects.get(username="sam")
    assert user.groups.filter(name=SUPPORT_GROUP).exists()
    assert "support staff (granted)" in out
    assert AuditEvent.objects.filter(action="support.granted", target="sam", tenant=None).count() == 1
    assert "support staff (already)" in run("create_portal_user", "sam", "--support")
    assert AuditEvent.objects.filter(action="support.granted").count() == 1


def test_unknown_tenant_creates_nothing(django_user_model, tenants):
    with pytest.raises(CommandError, match="'nope'"):
        run("create_portal_user", "hank", "--password", "pw", "--tenant", "acme", "--role", "admin", "--tenant", "nope")
    assert not django_user_model.objects.filter(username="hank").exists()
    assert not Membership.objects.exists() and not AuditEvent.objects.exists()
