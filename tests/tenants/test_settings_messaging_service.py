"""Settings refuse a Messaging Service SID that Twilio does not know in the tenant's subaccount
(every send through it would fail with 21701), and save nothing when Twilio cannot be asked."""

import pytest

from tenants.models import AuditEvent, Tenant
from tenants.twilio import tenant_client
from tenants.twilio_errors import TERMINAL_CODES, explain
from tests.tenants.factories import PASSWORD

FORM = {
    "name": "Acme",
    "timezone": "America/New_York",
    "keyword_replies": "twilio",
    "verify_service_sid": "",
    "help_text": "",
    "stop_text": "",
    "sender_email": "",
}


@pytest.fixture
def live(tenant, sandbox, sandbox_settings):
    sandbox.register_account(tenant.account_sid, tenant.auth_token.reveal())
    return tenant


def save(client, tenant, admin, sid):
    client.login(username=admin.username, password=PASSWORD)
    return client.post(f"/t/{tenant.slug}/settings/", {**FORM, "messaging_service_sid": sid})


def test_unknown_messaging_service_is_a_form_error(client, live, tenant_admin):
    response = save(client, live, tenant_admin, "MG" + "0" * 32)

    assert response.status_code == 200
    assert "Twilio has no Messaging Service" in response.content.decode()
    assert Tenant.objects.get(pk=live.pk).messaging_service_sid == ""
    assert not AuditEvent.objects.filter(action="tenant.settings_update").exists()


def test_existing_messaging_service_is_saved(client, live, tenant_admin):
    service = tenant_client(live).messaging.v1.services.create(friendly_name="Acme")

    response = save(client, live, tenant_admin, service.sid)

    assert response.status_code == 302
    assert Tenant.objects.get(pk=live.pk).messaging_service_sid == service.sid


def test_unreachable_twilio_saves_nothing(client, tenant, tenant_admin, settings):
    settings.TWILIO_API_BASE_URL = "http://127.0.0.1:9"  # nothing listens on discard

    response = save(client, tenant, tenant_admin, "MG" + "1" * 32)

    assert response.status_code == 200
    assert "could not be reached" in response.content.decode()
    assert Tenant.objects.get(pk=tenant.pk).messaging_service_sid == ""


def test_unchanged_sid_is_not_checked_again(client, tenant, tenant_admin, settings):
    Tenant.objects.filter(pk=tenant.pk).update(messaging_service_sid="MG" + "2" * 32)
    settings.TWILIO_API_BASE_URL = "http://127.0.0.1:9"

    response = save(client, tenant, tenant_admin, "MG" + "2" * 32)

    assert response.status_code == 302


def test_21701_is_explained_and_terminal():
    assert "Messaging Service SID" in explain(21701) and "no explanation on file" not in explain(21701)
    assert 21701 in TERMINAL_CODES
