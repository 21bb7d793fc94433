"""The Django admin (/admin/, superusers only): a tenant save writes only what the operator
changed, so a credential rotation or suspension committed while the form was open survives;
secrets never render; numbers and alerts are listed across tenants, read-only."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenants.crypto import Secret
from tenants.models import Alert, AuditEvent, Membership, PhoneNumber, Tenant
from tests.conftest import PASSWORD, make_tenant, make_user, random_sid

pytestmark = pytest.mark.django_db

AUTH_TOKEN = "a1" * 16
API_KEY_SECRET = "api-key-secret-0123456789abcdef"
SIGNING_KEY = "signing-key-0123456789abcdef"
SECONDARY_TOKEN = "b2" * 16
PENDING_SECRET = "pending-secret-0123456789abcdef"


class FormValues(HTMLParser):
    """What a browser would submit from `<form id=form_id>`: inputs, selects, textareas."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and "name" in a:
            kind = a.get("type", "text")
            if kind in ("submit", "button", "image", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.values[a["name"]] = a.get("value") or ("on" if kind == "checkbox" else "")
        elif tag == "select" and "name" in a:
            self._select = a["name"]
            self.values.setdefault(self._select, "")
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value", "")
        elif tag == "textarea" and "name" in a:
            self._textarea = a["name"]
            self.values[self._textarea] = ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            # Browsers drop the newline right after <textarea>; html.parser keeps it.
            self.values[self._textarea] = self.values[self._textarea].removeprefix("\n")
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea] += data


def loaded_form(response, form_id: str = "tenant_form") -> dict[str, str]:
    """The form as the operator's browser loaded it, ready to post back."""
    assert response.status_code == 200
    parser = FormValues(form_id)
    parser.feed(response.content.decode())
    parser.close()
    assert parser.values, f"no <form id={form_id}> on the page"
    return parser.values


def raw_column(tenant_id: int, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM tenants_tenant WHERE id = %s", [tenant_id])
        return cursor.fetchone()[0]


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("olga-operator", "olga@platform.example", PASSWORD)
    client.force_login(user)
    return user


@pytest.fixture
def secret_tenant(db):
    return make_tenant(
        "acme",
        name="Acme",
        auth_token=AUTH_TOKEN,
        api_key_sid=random_sid("SK"),
        api_key_secret=API_KEY_SECRET,
        webhook_signing_key=SIGNING_KEY,
        secondary_auth_token=SECONDARY_TOKEN,
        pending_api_key_sid=random_sid("SK"),
        pending_api_key_secret=PENDING_SECRET,
        help_text="Acme: help at acme.example.\nReply STOP to cancel.",
    )


def change_url(tenant: Tenant) -> str:
    return f"/admin/tenants/tenant/{tenant.pk}/change/"


def test_change_page_renders_no_secret_nor_its_ciphertext(client, operator, secret_tenant):
    response = client.get(change_url(secret_tenant))
    assert response.status_code == 200
    html = response.content.decode()
    for column, plaintext in (
        ("auth_token", AUTH_TOKEN),
        ("api_key_secret", API_KEY_SECRET),
        ("webhook_signing_key", SIGNING_KEY),
        ("secondary_auth_token", SECONDARY_TOKEN),
        ("pending_api_key_secret", PENDING_SECRET),
    ):
        assert plaintext not in html
        assert raw_column(secret_tenant.pk, column) not in html
    assert 'name="initial-auth_token"' not in html  # no hidden copy of a secret either


def test_stale_form_keeps_a_rotation_and_suspension_made_meanwhile(client, operator, secret_tenant):
    data = loaded_form(client.get(change_url(secret_tenant)))
    # Meanwhile: the auth token is promoted, the API key rotated, the tenant suspended.
    new_key_sid = random_sid("SK")
    Tenant.objects.filter(pk=secret_tenant.pk).update(
        auth_token=Secret("c3" * 16),
        secondary_auth_token="",
        api_key_sid=new_key_sid,
        api_key_secret=Secret("rotated-api-key-secret-0123456789"),
        pending_api_key_sid="",
        pending_api_key_secret="",
        status=Tenant.Status.SUSPENDED,
    )

    data["name"] = "Acme Corporation"
    response = client.post(change_url(secret_tenant), data)

    assert response.status_code == 302, response.content[:3000]
    tenant = Tenant.objects.get(pk=secret_tenant.pk)
    assert tenant.name == "Acme Corporation"
    assert tenant.auth_token.reveal() == "c3" * 16
    assert tenant.secondary_auth_token.reveal() == ""
    assert tenant.api_key_sid == new_key_sid
    assert tenant.api_key_secret.reveal() == "rotated-api-key-secret-0123456789"
    assert tenant.pending_api_key_sid == "" and tenant.pending_api_key_secret.reveal() == ""
    assert tenant.status == Tenant.Status.SUSPENDED
    assert tenant.help_text == secret_tenant.help_text
    event = AuditEvent.objects.get(action="tenant.admin_change")
    assert (event.tenant, event.actor, event.details) == (tenant, operator, {"fields": ["name"]})


def test_lifecycle_fields_are_read_only_here(client, operator, secret_tenant):
    """Status and the API key change through the operator pages, which act at Twilio too."""
    data = loaded_form(client.get(change_url(secret_tenant)))
    assert not {"status", "api_key_sid", "account_sid", "slug"} & set(data)
    data.update(status="closed", api_key_sid=random_sid("SK"), account_sid=random_sid("AC"), slug="renamed")

    response = client.post(change_url(secret_tenant), data)

    assert response.status_code == 302, response.content[:3000]
    tenant = Tenant.objects.get(pk=secret_tenant.pk)
    assert (tenant.status, tenant.api_key_sid, tenant.account_sid, tenant.slug) == (
        secret_tenant.status,
        secret_tenant.api_key_sid,
        secret_tenant.account_sid,
        secret_tenant.slug,
    )
    assert not AuditEvent.objects.filter(action="tenant.admin_change").exists()


def test_unchanged_post_writes_nothing(client, operator, secret_tenant):
    data = loaded_form(client.get(change_url(secret_tenant)))
    Tenant.objects.filter(pk=secret_tenant.pk).update(auth_token=Secret("d4" * 16))
    before = Tenant.objects.get(pk=secret_tenant.pk).updated_at

    with CaptureQueriesContext(connection) as queries:
        response = client.post(change_url(secret_tenant), data)

    assert response.status_code == 302, response.content[:3000]
    assert not [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "tenants_tenant" in q["sql"]]
    tenant = Tenant.objects.get(pk=secret_tenant.pk)
    assert tenant.updated_at == before
    assert tenant.auth_token.reveal() == "d4" * 16
    assert not AuditEvent.objects.filter(tenant=tenant).exists()


def test_typed_secret_is_saved_and_audited_by_name_only(client, operator, secret_tenant):
    data = loaded_form(client.get(change_url(secret_tenant)))
    data["webhook_signing_key"] = "new-signing-key-9876543210"

    response = client.post(change_url(secret_tenant), data)

    assert response.status_code == 302, response.content[:3000]
    tenant = Tenant.objects.get(pk=secret_tenant.pk)
    assert tenant.webhook_signing_key.reveal() == "new-signing-key-9876543210"
    assert tenant.auth_token.reveal() == AUTH_TOKEN
    event = AuditEvent.objects.get(action="tenant.admin_change")
    assert event.details == {"fields": ["webhook_signing_key"]}
    assert "new-signing-key" not in str(event.details) + event.target + event.reason


def test_new_tenant_is_saved_whole_and_audited(client, operator):
    data = loaded_form(client.get("/admin/tenants/tenant/add/"))
    data.update(name="Initech", slug="initech", account_sid=random_sid("AC"), auth_token="e5" * 16)

    response = client.post("/admin/tenants/tenant/add/", data)

    assert response.status_code == 302, response.content[:3000]
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.auth_token.reveal() == "e5" * 16
    event = AuditEvent.objects.get(action="tenant.admin_create")
    assert event.tenant == tenant and "e5" * 16 not in str(event.details)
    assert {"name", "slug", "account_sid", "auth_token"} <= set(event.details["fields"])


def test_membership_added_in_admin_is_audited(client, operator, secret_tenant, django_user_model):
    dana = make_user(django_user_model, "dana")
    data = loaded_form(client.get(change_url(secret_tenant)))
    data.update(
        {
            "memberships-TOTAL_FORMS": "1",
            "memberships-0-id": "",
            "memberships-0-tenant": str(secret_tenant.pk),
            "memberships-0-user": str(dana.pk),
            "memberships-0-role": "admin",
        }
    )

    response = client.post(change_url(secret_tenant), data)

    assert response.status_code == 302, response.content[:3000]
    assert Membership.objects.get(tenant=secret_tenant, user=dana).role == "admin"
    event = AuditEvent.objects.get(action="membership.added")
    assert (event.tenant, event.target, event.details) == (secret_tenant, "dana", {"role": "admin", "via": "admin"})
    assert not AuditEvent.objects.filter(action="tenant.admin_change").exists()  # the tenant row didn't change


# --- Read-only, cross-tenant registrations -------------------------------------------------


def phone(tenant: Tenant, number: str, **fields) -> PhoneNumber:
    return PhoneNumber.all_tenants.create(
        tenant=tenant, sid=random_sid("PN"), phone_number=number, synced_at=timezone.now(), **fields
    )


@pytest.fixture
def numbers(tenant, other_tenant):
    return [
        phone(tenant, "+15550000001", sms=True),
        phone(other_tenant, "+15550000002", voice=True, released_at=timezone.now()),
    ]


@pytest.fixture
def alerts(tenant, other_tenant):
    now = timezone.now()
    return [
        Alert.all_tenants.create(tenant=tenant, kind="failure_rate", raised_at=now, details={"failed": 7}),
        Alert.all_tenants.create(
            tenant=other_tenant, kind="signature_failures", raised_at=now - timedelta(hours=1), cleared_at=now
        ),
    ]


def test_phone_numbers_listed_across_tenants(client, operator, numbers, tenant, other_tenant):
    response = client.get("/admin/tenants/phonenumber/")
    assert response.status_code == 200
    assert b"+15550000001" in response.content and b"+15550000002" in response.content
    assert b"Acme" in response.content and b"Globex" in response.content

    only_acme = client.get(f"/admin/tenants/phonenumber/?tenant__id__exact={tenant.pk}")
    assert b"+15550000001" in only_acme.content and b"+15550000002" not in only_acme.content
    released = client.get("/admin/tenants/phonenumber/?status=released")
    assert b"+15550000002" in released.content and b"+15550000001" not in released.content
    searched = client.get("/admin/tenants/phonenumber/?q=globex")
    assert b"+15550000002" in searched.content and b"+15550000001" not in searched.content
    assert client.get(f"/admin/tenants/phonenumber/{numbers[0].pk}/change/").status_code == 200


def test_alerts_listed_across_tenants(client, operator, alerts, tenant, other_tenant):
    response = client.get("/admin/tenants/alert/")
    assert response.status_code == 200
    assert b"Acme" in response.content and b"Globex" in response.content
    assert b"7 of ? outbound messages failed" in response.content

    open_only = client.get("/admin/tenants/alert/?status=open")
    assert b"Delivery failure rate" in open_only.content
    assert b"Webhook signature failures</td>" not in open_only.content
    only_globex = client.get(f"/admin/tenants/alert/?tenant__id__exact={other_tenant.pk}")
    assert b"Globex" in only_globex.content and b"Delivery failure rate</td>" not in only_globex.content
    assert client.get(f"/admin/tenants/alert/{alerts[0].pk}/change/").status_code == 200


@pytest.mark.parametrize("model", ["phonenumber", "alert", "auditevent"])
def test_platform_rows_cannot_be_added_changed_or_deleted(client, operator, numbers, alerts, tenant, model):
    audit = AuditEvent.objects.create(tenant=tenant, actor_label="system", action="tenant.update")
    pk = {"phonenumber": numbers[0].pk, "alert": alerts[0].pk, "auditevent": audit.pk}[model]

    assert client.get(f"/admin/tenants/{model}/add/").status_code == 403
    assert client.post(f"/admin/tenants/{model}/add/", {}).status_code == 403
    assert client.get(f"/admin/tenants/{model}/{pk}/delete/").status_code == 403
    assert client.post(f"/admin/tenants/{model}/{pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/tenants/{model}/{pk}/change/", {}).status_code == 403
    changelist = client.get(f"/admin/tenants/{model}/")
    assert changelist.status_code == 200
    assert b"delete_selected" not in changelist.content
    assert PhoneNumber.all_tenants.count() == 2 and Alert.all_tenants.count() == 2
    assert AuditEvent.objects.filter(pk=audit.pk).exists()


def test_admin_is_for_superusers_only(client, django_user_model, tenant, numbers):
    client.force_login(make_user(django_user_model, "alice-admin", tenant=tenant, role="admin"))
    assert client.get("/admin/tenants/phonenumber/").status_code == 302  # to the admin login
    assert client.get(change_url(tenant)).status_code == 302
