"""Secrets at rest: the raw column holds a Fernet token, never the secret; nothing prints it."""

import secrets

import pytest
from cryptography.fernet import Fernet
from django.contrib.admin.sites import site
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from tenants.crypto import Secret
from tenants.models import Tenant
from tests.tenants.factories import UserFactory

TOKEN = secrets.token_hex(16)


def raw_column(tenant_id, column="auth_token"):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM tenants_tenant WHERE id = %s", [tenant_id])
        return cursor.fetchone()[0]


@pytest.fixture
def secret_tenant(db):
    return Tenant.objects.create(
        name="Acme",
        slug="acme",
        account_sid="AC" + "a" * 32,
        auth_token=TOKEN,
        api_key_sid="SK" + "b" * 32,
        api_key_secret="key-secret-value-123456",
    )


def test_raw_database_column_holds_no_token(secret_tenant):
    raw = raw_column(secret_tenant.id)
    assert TOKEN not in raw
    assert raw.startswith("gAAAA")  # a Fernet token
    assert "key-secret-value" not in raw_column(secret_tenant.id, "api_key_secret")
    assert Tenant.objects.get(pk=secret_tenant.pk).auth_token.reveal() == TOKEN


def test_secret_never_prints(secret_tenant):
    t = Tenant.objects.get(pk=secret_tenant.pk)
    for rendering in (str(t.auth_token), repr(t.auth_token), f"{t.auth_token}", repr(t), str(t.__dict__)):
        assert TOKEN not in rendering
    assert str(t.auth_token).endswith(TOKEN[-4:])


def test_secret_assigned_in_memory_is_masked_too(secret_tenant):
    secret_tenant.auth_token = "fresh-token-value-abcdef0123"
    assert isinstance(secret_tenant.auth_token, Secret)
    assert "fresh-token" not in repr(secret_tenant.auth_token)


def test_secret_cannot_be_pickled():
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(Secret("x" * 20))


def test_admin_change_page_never_renders_secrets(admin_client, secret_tenant):
    response = admin_client.get(f"/admin/tenants/tenant/{secret_tenant.pk}/change/")
    assert response.status_code == 200
    assert TOKEN.encode() not in response.content
    assert b"key-secret-value" not in response.content
    assert site.is_registered(Tenant)


def test_admin_blank_secret_keeps_stored_one(admin_client, secret_tenant):
    data = {
        "name": "Acme",
        "slug": "acme",
        "account_sid": secret_tenant.account_sid,
        "auth_token": "",
        "api_key_sid": secret_tenant.api_key_sid,
        "api_key_secret": "",
        "webhook_signing_key": "",
        "status": "active",
        "timezone": "America/New_York",
        "messaging_service_sid": "",
        "verify_service_sid": "",
        "help_text": "",
        "stop_text": "",
        "keyword_replies": "twilio",
        "sender_email": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    response = admin_client.post(f"/admin/tenants/tenant/{secret_tenant.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]
    assert Tenant.objects.get(pk=secret_tenant.pk).auth_token.reveal() == TOKEN


def test_settings_page_shows_masked_token_only(client, secret_tenant, django_user_model):
    client.force_login(UserFactory(username="adm", tenant=secret_tenant, role="admin"))
    response = client.get("/t/acme/settings/")
    assert response.status_code == 200
    assert TOKEN.encode() not in response.content
    assert TOKEN[-4:].encode() in response.content


def test_key_rotation(secret_tenant, settings):
    old_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    before = raw_column(secret_tenant.id)
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, *old_keys]):
        call_command("rotate_encryption_keys")
        after = raw_column(secret_tenant.id)
        assert after != before
    # only the new key is needed now
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        assert Tenant.objects.get(pk=secret_tenant.pk).auth_token.reveal() == TOKEN
        assert Fernet(new_key.encode()).decrypt(after.encode()).decode() == TOKEN
