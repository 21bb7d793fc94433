"""The Django admin (/admin/, superusers only): a tenant save writes only what the operator
changed, so a credential rotation or suspension committed while the form was open survives;
secrets never render; numbers and alerts are listed across tenants, read-only."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenants.audit import SYSTEM
from tenants.crypto import Secret
from tenants.invitations import invitation_create
from tenants.models import SUPPORT_GROUP, Alert, AuditEvent, Membership, PhoneNumber, Tenant, is_support
from tenants.services import support_grant
from tests.conftest import random_sid
from tests.tenants.factories import PASSWORD, AuditEventFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

AUTH_TOKEN = "a1" * 16
API_KEY_SECRET = "api-key-secret-0123456789abcdef"
SIGNING_KEY = "signing-key-0123456789abcdef"
SECONDARY_TOKEN = "b2" * 16
PENDING_SECRET = "pending-secret-0123456789abcdef"
NEW_PASSWORD = "Correct-Horse-Battery-7"
IP = "203.0.113.9"


class FormValues(HTMLParser):
    """What a browser would submit from `<form id=form_id>`: inputs, selects, textareas."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.values: dict[str, str | list[str]] = {}
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
            if "multiple" in a:  # a browser sends each selected option, or nothing
                self.values[self._select] = []
            else:
                self.values.setdefault(self._select, "")
        elif tag == "option" and self._select and "selected" in a:
            if isinstance(self.values[self._select], list):
                self.values[self._select].append(a.get("value", ""))
            else:
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


def loaded_form(response, form_id: str = "tenant_form") -> dict[str, str | list[str]]:
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
    return TenantFactory(
        slug="acme",
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
    dana = UserFactory(username="dana")
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


def membership_form(client, tenant: Tenant, **row) -> dict:
    """The tenant's change form with its one membership row changed as given."""
    data = loaded_form(client.get(change_url(tenant)))
    assert data["memberships-TOTAL_FORMS"] == "1"
    data.update({f"memberships-0-{name}": str(value) for name, value in row.items()})
    return data


def test_membership_given_to_another_user_is_a_removal_and_an_addition(
    client, operator, secret_tenant, django_user_model
):
    UserFactory(username="dana", tenant=secret_tenant, role="viewer")
    erin = UserFactory(username="erin")

    response = client.post(
        change_url(secret_tenant), membership_form(client, secret_tenant, user=erin.pk, role="admin"), REMOTE_ADDR=IP
    )

    assert response.status_code == 302, response.content[:3000]
    assert list(Membership.objects.filter(tenant=secret_tenant).values_list("user__username", "role")) == [
        ("erin", "admin")
    ]
    events = AuditEvent.objects.order_by("id")
    assert [(e.action, e.target, e.details) for e in events] == [
        ("membership.removed", "dana", {"role": "viewer", "via": "admin"}),  # the role dana had
        ("membership.added", "erin", {"role": "admin", "via": "admin"}),
    ]
    assert all((e.tenant, e.actor, e.ip_address) == (secret_tenant, operator, IP) for e in events)


def test_membership_role_change_in_admin_is_a_change(client, operator, secret_tenant, django_user_model):
    UserFactory(username="dana", tenant=secret_tenant, role="viewer")

    client.post(change_url(secret_tenant), membership_form(client, secret_tenant, role="admin"), REMOTE_ADDR=IP)

    event = AuditEvent.objects.get()
    assert (event.action, event.target, event.details) == (
        "membership.changed",
        "dana",
        {"role": "admin", "via": "admin", "old_role": "viewer", "new_role": "admin"},
    )


def test_admin_cannot_demote_the_last_admin(client, operator, secret_tenant, django_user_model):
    UserFactory(username="dana", tenant=secret_tenant, role="admin")

    response = client.post(change_url(secret_tenant), membership_form(client, secret_tenant, role="viewer"))

    assert response.status_code == 200
    assert "suspend or close the tenant instead" in response.content.decode()
    assert Membership.objects.get(tenant=secret_tenant).role == "admin"
    assert not AuditEvent.objects.exists()


def test_admin_cannot_remove_the_last_admin(client, operator, secret_tenant, django_user_model):
    UserFactory(username="dana", tenant=secret_tenant, role="admin")

    response = client.post(change_url(secret_tenant), membership_form(client, secret_tenant, DELETE="on"))

    assert response.status_code == 200
    assert "suspend or close the tenant instead" in response.content.decode()
    assert Membership.objects.filter(tenant=secret_tenant).count() == 1


# --- Users and groups: every change of access is on the audit log --------------------------------


@pytest.fixture
def bob(django_user_model):
    return UserFactory(username="bob")


@pytest.fixture
def support_group(db):
    return Group.objects.get_or_create(name=SUPPORT_GROUP)[0]


def user_url(user, page: str = "change") -> str:
    return f"/admin/auth/user/{user.pk}/{page}/"


def save_user(client, user, **changes) -> None:
    """Post the user's change form as loaded, with `changes`; None unticks a checkbox."""
    data = loaded_form(client.get(user_url(user)), "user_form")
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    response = client.post(user_url(user), data, REMOTE_ADDR=IP)
    assert response.status_code == 302, response.content[:3000]


def access_events(operator) -> list[tuple[str, str]]:
    """(action, target) of the audit rows; each is platform-wide, by `operator`, from IP."""
    events = list(AuditEvent.objects.order_by("id"))
    assert all(
        (e.tenant, e.actor, e.actor_label, e.ip_address) == (None, operator, operator.username, IP) for e in events
    )
    return [(e.action, e.target) for e in events]


def fresh(user):
    return type(user).objects.get(pk=user.pk)


def test_support_granted_and_revoked_on_the_user_page(client, operator, bob, support_group):
    helpdesk = Group.objects.create(name="Helpdesk")

    save_user(client, bob, groups=[str(support_group.pk), str(helpdesk.pk)])

    assert is_support(fresh(bob)) and fresh(bob).groups.filter(pk=helpdesk.pk).exists()
    assert access_events(operator) == [("support.granted", "bob"), ("group.joined", "bob")]

    save_user(client, bob, groups=[str(helpdesk.pk)])

    assert not is_support(fresh(bob)) and fresh(bob).groups.filter(pk=helpdesk.pk).exists()
    assert access_events(operator)[2:] == [("support.revoked", "bob")]


def test_superuser_and_staff_granted_and_revoked_on_the_user_page(client, operator, bob):
    save_user(client, bob, is_superuser="on", is_staff="on")

    assert fresh(bob).is_superuser and fresh(bob).is_staff
    assert access_events(operator) == [("superuser.granted", "bob"), ("staff.granted", "bob")]

    save_user(client, bob, is_superuser=None)

    assert not fresh(bob).is_superuser and fresh(bob).is_staff
    assert access_events(operator)[2:] == [("superuser.revoked", "bob")]

    save_user(client, bob, is_staff=None)

    assert not fresh(bob).is_staff
    assert access_events(operator)[3:] == [("staff.revoked", "bob")]


def test_deactivating_and_reactivating_a_user_is_audited(client, operator, bob):
    save_user(client, bob, is_active=None)
    assert not fresh(bob).is_active
    save_user(client, bob, is_active="on")
    assert fresh(bob).is_active
    assert access_events(operator) == [("user.deactivated", "bob"), ("user.activated", "bob")]


def test_saving_a_user_without_an_access_change_writes_no_audit_event(client, operator, bob, support_group):
    bob.groups.add(support_group)
    bob.is_staff = True
    bob.save()

    save_user(client, bob, first_name="Robert", email="bob@acme.example")

    assert fresh(bob).first_name == "Robert" and is_support(fresh(bob)) and fresh(bob).is_staff
    assert not AuditEvent.objects.exists()


def test_a_stale_user_form_is_audited_as_what_its_save_changed(client, operator, bob, support_group):
    """Diffed against the stored row: a form opened before a grant and saved after it undoes the
    grant, and the log says so."""
    data = loaded_form(client.get(user_url(bob)), "user_form")
    support_grant(user=bob, audit=SYSTEM)  # e.g. create_portal_user --support, meanwhile

    client.post(user_url(bob), data, REMOTE_ADDR=IP)

    assert not is_support(fresh(bob))
    assert list(AuditEvent.objects.order_by("id").values_list("action", "actor")) == [
        ("support.granted", None),
        ("support.revoked", operator.pk),
    ]


def test_adding_a_user_writes_no_access_event(client, operator):
    data = loaded_form(client.get("/admin/auth/user/add/"), "user_form")
    data.update(username="carol", password1=NEW_PASSWORD, password2=NEW_PASSWORD)

    response = client.post("/admin/auth/user/add/", data, REMOTE_ADDR=IP)

    assert response.status_code == 302, response.content[:3000]
    assert not AuditEvent.objects.exists()  # no role yet: granting one on the next page is audited


def test_password_set_in_the_admin_is_audited_but_never_the_password(client, operator, bob):
    url = user_url(bob, "password")
    mismatch = {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"}
    assert client.post(url, mismatch, REMOTE_ADDR=IP).status_code == 200
    assert not AuditEvent.objects.exists()

    data = {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    response = client.post(url, data, REMOTE_ADDR=IP)

    assert response.status_code == 302, response.content[:3000]
    assert fresh(bob).check_password(NEW_PASSWORD)
    assert access_events(operator) == [("user.password_changed", "bob")]
    event = AuditEvent.objects.get()
    assert event.details == {"usable": True}
    stored = fresh(bob).password
    assert NEW_PASSWORD not in str(event.details) + event.reason and stored not in str(event.details)

    response = client.post(url, {"usable_password": "false", "unset-password": "1"}, REMOTE_ADDR=IP)

    assert response.status_code == 302 and not fresh(bob).has_usable_password()
    assert AuditEvent.objects.order_by("id").last().details == {"usable": False}


def group_url(group, page: str = "change") -> str:
    return f"/admin/auth/group/{group.pk}/{page}/"


def test_support_group_keeps_its_name_and_cannot_be_deleted(client, operator, support_group):
    """The group admin edits names and permissions, not members; but support staff is found by
    the group's name, so renaming or deleting it would take support from everyone, unaudited."""
    data = loaded_form(client.get(group_url(support_group)), "group_form")
    assert "name" not in data
    client.post(group_url(support_group), {**data, "name": "Renamed"})
    assert Group.objects.get(pk=support_group.pk).name == SUPPORT_GROUP

    assert client.get(group_url(support_group, "delete")).status_code == 403
    assert client.post(group_url(support_group, "delete"), {"post": "yes"}).status_code == 403
    client.post(
        "/admin/auth/group/", {"action": "delete_selected", "_selected_action": [support_group.pk], "post": "yes"}
    )
    assert Group.objects.filter(pk=support_group.pk).exists()


def test_another_group_cannot_be_renamed_into_support_staff(client, operator, bob):
    helpdesk = Group.objects.create(name="Helpdesk")
    bob.groups.add(helpdesk)
    data = loaded_form(client.get(group_url(helpdesk)), "group_form")

    response = client.post(group_url(helpdesk), {**data, "name": SUPPORT_GROUP})

    assert (
        response.status_code == 200
        and "add people to the support group on their user page" in response.content.decode()
    )
    assert Group.objects.get(pk=helpdesk.pk).name == "Helpdesk" and not is_support(fresh(bob))


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
    audit = AuditEventFactory(tenant=tenant, actor_label="system", action="tenant.update")
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
    client.force_login(UserFactory(username="alice-admin", tenant=tenant, role="admin"))
    assert client.get("/admin/tenants/phonenumber/").status_code == 302  # to the admin login
    assert client.get(change_url(tenant)).status_code == 302


def test_staff_who_are_not_superusers_stay_out_of_the_admin(client, django_user_model, bob):
    """Django lets any active staff user in; one who may change users could make himself
    superuser there. The admin is for platform operators (superusers) only."""
    staff = UserFactory(username="stan-staff")
    staff.is_staff = True
    staff.save()
    staff.user_permissions.add(Permission.objects.get(codename="change_user"))
    client.force_login(staff)
    assert client.get("/admin/").status_code == 302
    assert client.get(user_url(bob)).status_code == 302
    assert client.post(user_url(bob), {"is_superuser": "on"}).status_code == 302
    assert not fresh(bob).is_superuser and not fresh(staff).is_superuser


def test_other_groups_and_direct_permissions_given_on_the_user_page_are_audited(client, operator, bob):
    ops = Group.objects.create(name="Ops")
    change_tenant = Permission.objects.get(content_type__app_label="tenants", codename="change_tenant")
    save_user(client, bob, groups=[str(ops.pk)], user_permissions=[str(change_tenant.pk)])
    save_user(client, bob, groups=None, user_permissions=None)
    events = [(e.action, e.target, e.details) for e in AuditEvent.objects.order_by("id")]
    assert events == [
        ("group.joined", "bob", {"what": "Ops"}),
        ("permission.granted", "bob", {"what": "tenants.change_tenant"}),
        ("group.left", "bob", {"what": "Ops"}),
        ("permission.revoked", "bob", {"what": "tenants.change_tenant"}),
    ]
    access_events(operator)  # each by the operator, platform-wide, from IP


def test_a_groups_permissions_changed_are_audited(client, operator, bob):
    helpdesk = Group.objects.create(name="Helpdesk")
    bob.groups.add(helpdesk)
    change_user = Permission.objects.get(content_type__app_label="auth", codename="change_user")
    data = loaded_form(client.get(group_url(helpdesk)), "group_form")
    response = client.post(group_url(helpdesk), {**data, "permissions": [str(change_user.pk)]}, REMOTE_ADDR=IP)
    assert response.status_code == 302, response.content[:2000]
    assert access_events(operator) == [("group.permission_granted", "Helpdesk")]
    assert AuditEvent.objects.get().details == {"what": "auth.change_user"}
    data = loaded_form(client.get(group_url(helpdesk)), "group_form")
    data.pop("permissions", None)
    assert client.post(group_url(helpdesk), data, REMOTE_ADDR=IP).status_code == 302
    assert access_events(operator)[1:] == [("group.permission_revoked", "Helpdesk")]


def test_deleting_users_and_groups_is_audited_and_support_stays(client, operator, bob, support_group):
    bob.groups.add(support_group)
    carol = type(bob).objects.create(username="carol", is_superuser=True)
    client.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [bob.pk, carol.pk], "post": "yes"},
        REMOTE_ADDR=IP,
    )
    assert not type(bob).objects.filter(username__in=["bob", "carol"]).exists()
    deleted = {e.target: e.details for e in AuditEvent.objects.filter(action="user.deleted")}
    assert deleted["bob"]["groups"] == [SUPPORT_GROUP] and deleted["carol"]["superuser"] is True
    old = Group.objects.create(name="Old")
    # With the support group among them, Django refuses the whole action (403): nothing goes.
    response = client.post(
        "/admin/auth/group/",
        {"action": "delete_selected", "_selected_action": [old.pk, support_group.pk], "post": "yes"},
        REMOTE_ADDR=IP,
    )
    assert response.status_code == 403 and Group.objects.filter(pk__in=[old.pk, support_group.pk]).count() == 2
    client.post(
        "/admin/auth/group/", {"action": "delete_selected", "_selected_action": [old.pk], "post": "yes"}, REMOTE_ADDR=IP
    )
    assert not Group.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(action="group.deleted").values_list("target", flat=True).get() == "Old"


# --- A tenant's last active admin can be neither deleted nor deactivated here ------------------------


def test_deleting_a_tenants_last_active_admin_is_refused_with_the_reason(client, operator, secret_tenant):
    dana = UserFactory(username="dana", tenant=secret_tenant, role="admin")

    confirm = client.get(user_url(dana, "delete"))
    response = client.post(user_url(dana, "delete"), {"post": "yes"}, REMOTE_ADDR=IP)

    for page in (confirm, response):
        assert page.status_code == 200
        assert "“Acme” would be left with no active admin" in page.content.decode()
    assert type(dana).objects.filter(pk=dana.pk).exists()
    assert not AuditEvent.objects.exists()


def test_deleting_selected_users_that_are_a_tenants_only_admins_is_refused(client, operator, secret_tenant):
    dana = UserFactory(username="dana", tenant=secret_tenant, role="admin")
    erin = UserFactory(username="erin", tenant=secret_tenant, role="admin")
    data = {"action": "delete_selected", "_selected_action": [dana.pk, erin.pk], "post": "yes"}

    response = client.post("/admin/auth/user/", data, REMOTE_ADDR=IP)

    assert response.status_code == 200 and "no active admin" in response.content.decode()
    assert type(dana).objects.filter(pk__in=[dana.pk, erin.pk]).count() == 2
    # One of the two may go: the other still manages the tenant.
    client.post("/admin/auth/user/", {**data, "_selected_action": [dana.pk]}, REMOTE_ADDR=IP)
    assert not type(dana).objects.filter(pk=dana.pk).exists()
    assert AuditEvent.objects.get(action="user.deleted").target == "dana"


def test_deactivating_a_tenants_last_active_admin_is_refused(client, operator, secret_tenant):
    dana = UserFactory(username="dana", tenant=secret_tenant, role="admin")
    data = loaded_form(client.get(user_url(dana)), "user_form")
    data.pop("is_active")

    response = client.post(user_url(dana), data, REMOTE_ADDR=IP)

    assert response.status_code == 200
    assert "Not deactivating dana: “Acme” would be left with no active admin" in response.content.decode()
    assert fresh(dana).is_active and not AuditEvent.objects.exists()
    # With another active admin there, it goes through (and is audited as before).
    UserFactory(username="erin", tenant=secret_tenant, role="admin")
    save_user(client, dana, is_active=None)
    assert not fresh(dana).is_active
    assert access_events(operator) == [("user.deactivated", "dana")]


def test_a_closed_tenants_last_admin_may_be_deactivated_and_deleted(client, operator, secret_tenant):
    dana = UserFactory(username="dana", tenant=secret_tenant, role="admin")
    Tenant.objects.filter(pk=secret_tenant.pk).update(status=Tenant.Status.CLOSED)

    save_user(client, dana, is_active=None)
    client.post(user_url(dana, "delete"), {"post": "yes"}, REMOTE_ADDR=IP)

    assert not type(dana).objects.filter(pk=dana.pk).exists()


def test_invitations_are_listed_without_their_token_hash(client, operator, secret_tenant):
    created = invitation_create(tenant=secret_tenant, email="new@example.com", role="viewer", audit=SYSTEM)

    listing = client.get("/admin/tenants/invitation/").content.decode()
    detail = client.get(f"/admin/tenants/invitation/{created.invitation.pk}/change/").content.decode()

    assert "new@example.com" in listing and "new@example.com" in detail
    assert created.invitation.token_hash not in listing + detail
