"""One-off sends from the portal: form validation, gate preview, audit, and the whole path from
the form to `delivered` through the sandbox's signed callbacks."""

import time

import pytest
from django.urls import reverse

from messaging.ledgers.services import opt_out_record
from messaging.models import Message
from tenants.models import AuditEvent
from tests.tenants.factories import PASSWORD, PhoneNumberFactory, TenantFactory, UserFactory

SENDER = "+14155550101"
CUSTOMER = "+14155550188"


def send_url(tenant, name="message_send", **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


@pytest.fixture
def admin_client(client, tenant, tenant_admin):
    PhoneNumberFactory(tenant=tenant, phone_number=SENDER)
    client.force_login(tenant_admin)
    return client


def test_send_form_validates_the_number(admin_client, tenant):
    response = admin_client.post(
        send_url(tenant), {"to": "12", "purpose": "transactional", "sender": SENDER, "body": "hi"}
    )
    assert response.status_code == 200
    assert "not a valid number" in response.content.decode() or "is not a phone number" in response.content.decode()
    assert not Message.objects.for_tenant(tenant).exists()


def test_send_form_requires_a_sender_without_messaging_service(admin_client, tenant):
    response = admin_client.post(send_url(tenant), {"to": CUSTOMER, "purpose": "transactional", "body": "hi"})
    assert response.status_code == 200
    assert "Choose who the message is from" in response.content.decode()
    assert not Message.objects.for_tenant(tenant).exists()


def test_send_form_offers_the_inventory_and_the_messaging_service(admin_client, tenant):
    PhoneNumberFactory(tenant=tenant, phone_number="+14155550102", friendly_name="Support line")
    PhoneNumberFactory(tenant=tenant, phone_number="+14155550103", sms=False)  # voice only
    PhoneNumberFactory(tenant=tenant, phone_number="+14155550104", released_at="2026-01-01T00:00:00Z")
    tenant.messaging_service_sid = "MG" + "c" * 32
    tenant.save(update_fields=["messaging_service_sid"])

    form = admin_client.get(send_url(tenant)).context["form"]

    assert [value for value, _ in form.fields["sender"].choices] == ["MG" + "c" * 32, SENDER, "+14155550102"]
    assert form["sender"].value() == "MG" + "c" * 32  # the default
    page = admin_client.get(send_url(tenant)).content.decode()
    assert '<select name="sender"' in page and "Support line" in page


def test_send_form_defaults_to_the_first_number_without_a_service(admin_client, tenant):
    assert admin_client.get(send_url(tenant)).context["form"]["sender"].value() == SENDER


def test_send_through_the_messaging_service_has_no_from_number(admin_client, tenant):
    tenant.messaging_service_sid = "MG" + "c" * 32
    tenant.save(update_fields=["messaging_service_sid"])

    admin_client.post(
        send_url(tenant), {"to": CUSTOMER, "purpose": "transactional", "sender": "MG" + "c" * 32, "body": "hi"}
    )

    message = Message.objects.for_tenant(tenant).get()
    assert (message.from_number, message.messaging_service_sid) == ("", "MG" + "c" * 32)


def test_send_form_refuses_a_number_outside_the_inventory(admin_client, tenant):
    response = admin_client.post(
        send_url(tenant), {"to": CUSTOMER, "purpose": "transactional", "sender": "+14155550999", "body": "hi"}
    )
    assert "+14155550999 is not this tenant" in response.content.decode()
    assert not Message.objects.for_tenant(tenant).exists()


def test_gate_preview_reports_a_missing_or_foreign_sender(admin_client, tenant):
    url = send_url(tenant, "message_send_preview")

    missing = admin_client.get(url, {"to": CUSTOMER, "purpose": "otp"}).json()
    foreign = admin_client.get(url, {"to": CUSTOMER, "purpose": "otp", "sender": "+14155550999"}).json()
    fine = admin_client.get(url, {"to": CUSTOMER, "purpose": "otp", "sender": SENDER}).json()

    assert "Choose who the message is from" in missing["sender_error"] and missing["decision"] == ""
    assert "not this tenant's" in foreign["sender_error"] and foreign["decision"] == ""
    assert fine["sender_error"] == "" and fine["decision"] == "send"


def test_send_creates_pending_row_and_audits(admin_client, tenant):
    response = admin_client.post(
        send_url(tenant), {"to": "(415) 555-0188", "purpose": "transactional", "sender": SENDER, "body": "Your code"}
    )
    message = Message.objects.for_tenant(tenant).get()
    assert response.status_code == 302
    assert response["Location"] == send_url(tenant, "message_detail", message_id=message.pk)
    assert (message.status, message.to_number, message.from_number) == ("pending", CUSTOMER, SENDER)
    event = AuditEvent.objects.get(action="message.send")
    assert event.tenant == tenant and CUSTOMER not in event.target


def test_send_to_opted_out_number_is_blocked_not_sent(admin_client, tenant):
    opt_out_record(tenant=tenant, phone=CUSTOMER, source="admin", reason="asked on the phone")
    admin_client.post(send_url(tenant), {"to": CUSTOMER, "purpose": "otp", "sender": SENDER, "body": "123456"})
    message = Message.objects.for_tenant(tenant).get()
    assert (message.status, message.gate_reason) == ("blocked", "opted_out")


def test_gate_preview(admin_client, tenant):
    bad = admin_client.get(send_url(tenant, "message_send_preview"), {"to": "555", "purpose": "otp"}).json()
    assert bad["valid"] is False and bad["error"]
    ok = admin_client.get(
        send_url(tenant, "message_send_preview"), {"to": "415 555 0188", "purpose": "otp", "sender": SENDER}
    ).json()
    assert ok["valid"] and ok["e164"] == CUSTOMER and ok["decision"] == "send"
    marketing = admin_client.get(
        send_url(tenant, "message_send_preview"),
        {"to": CUSTOMER, "purpose": "marketing", "body": "Sale €5", "sender": SENDER},
    ).json()
    assert (marketing["decision"], marketing["reason"]) == ("block", "no_consent")
    assert marketing["encoding"] == "GSM-7" and marketing["segments"] == 1


def test_viewer_cannot_open_the_send_form(client, tenant, viewer):
    client.force_login(viewer)
    assert client.get(send_url(tenant)).status_code == 403
    assert client.get(send_url(tenant, "message_send_preview"), {"to": CUSTOMER, "purpose": "otp"}).status_code == 403


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_portal_send_goes_from_pending_to_delivered(live_server, settings, sandbox, celery_eager, django_user_model):
    """As a new user would: send from the form, then watch callbacks move it to delivered."""
    tenant = TenantFactory(slug="acme")
    PhoneNumberFactory(tenant=tenant, phone_number=SENDER)
    admin = UserFactory(username="alice", tenant=tenant, role="admin")
    sandbox.register_account(tenant.account_sid, tenant.auth_token.reveal())
    sandbox.seed_number(tenant.account_sid, SENDER)
    settings.TWILIO_API_BASE_URL = sandbox.base_url
    settings.PUBLIC_BASE_URL = live_server.url

    import requests

    session = requests.Session()
    login = live_server.url + "/accounts/login/"
    session.get(login)
    session.post(
        login,
        data={"username": admin.username, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": login},
    )
    form_url = live_server.url + send_url(tenant)
    session.get(form_url)
    response = session.post(
        form_url,
        data={
            "to": CUSTOMER,
            "purpose": "transactional",
            "sender": SENDER,
            "body": "Your order shipped.",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": form_url},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    message = Message.objects.for_tenant(tenant).get()
    status_url = live_server.url + send_url(tenant, "message_status", message_id=message.pk)
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = session.get(status_url).json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "delivered":
            break
        time.sleep(0.2)
    assert seen[-1] == "delivered", seen
    message.refresh_from_db()
    assert message.sid and message.sid.startswith("SM")
    assert set(message.events.for_tenant(tenant).values_list("status", flat=True)) >= {"sent", "delivered"}
    assert len([m for m in sandbox.messages() if m["to"] == CUSTOMER]) == 1
