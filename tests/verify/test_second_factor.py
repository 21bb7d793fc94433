"""The staff sign-in second factor, through the real login form and pages: enrolling an
authenticator app with a code computed from the secret the page shows, the code step after the
password, staff forced to enrol before any page, recovery codes (each once, regenerated, audited),
turning it off, and what the enforcement leaves alone. Throttling: test_second_factor_throttle.py."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection

from tenants.audit import SYSTEM
from tenants.models import AuditEvent, is_support
from tests.tenants.factories import PASSWORD, UserFactory
from tests.verify.second_factor_helpers import fresh_totp_code
from verify.models import RecoveryCode, RecoveryCodeDevice, SmsDevice, TotpDevice
from verify.second_factor.services import second_factor_has_device, totp_device_provision

pytestmark = pytest.mark.real_second_factor

LOGIN = "/accounts/login/"
ENROL = "/accounts/second-factor/enrol/"
VERIFY = "/accounts/second-factor/verify/"
MANAGE = "/accounts/second-factor/"


@pytest.fixture
def used_codes() -> set:
    return set()


@pytest.fixture
def operator(db):
    return UserFactory(username="olga-operator", superuser=True)


def sign_in(client, user, next_url: str = ""):
    """The password step through the login form; returns where it lands (after redirects)."""
    data = {"username": user.username, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return client.post(LOGIN, data, follow=True)


def path_of(response) -> str:
    return urlsplit(response.redirect_chain[-1][0]).path if response.redirect_chain else response.request["PATH_INFO"]


def enrol(client, used_codes: set, next_url: str = "") -> tuple[str, list[str], object]:
    """Enrol an authenticator app through the page: returns the secret, the recovery codes shown
    and the final response."""
    page = client.get(ENROL + (f"?next={next_url}" if next_url else ""))
    assert page.status_code == 200
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.content.decode()).group(1)
    done = client.post(ENROL, {"code": fresh_totp_code(secret, used_codes), "next": next_url})
    assert done.status_code == 200, done.content.decode()[:500]
    codes = re.findall(r"<li>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</li>", done.content.decode())
    return secret, codes, done


@pytest.mark.parametrize("role", ["superuser", "support"])
def test_staff_must_enrol_before_any_page(client, tenant, used_codes, role):
    user = UserFactory(username=f"staff-{role}", **{role: True})
    landed = sign_in(client, user, next_url=f"/t/{tenant.slug}/")
    assert path_of(landed) == ENROL
    assert "Superusers and support staff sign in with a second factor" in landed.content.decode()
    assert tenant.name not in landed.content.decode()  # no tenant switcher before the second factor
    for page in (f"/t/{tenant.slug}/", "/support/", "/admin/", "/operator/", MANAGE, VERIFY):
        response = client.get(page)
        assert response.status_code == 302 and urlsplit(response["Location"]).path == ENROL, page

    secret, codes, done = enrol(client, used_codes, next_url=f"/t/{tenant.slug}/")
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "shown only now" in done.content.decode() and f'href="/t/{tenant.slug}/"' in done.content.decode()
    assert client.get(f"/t/{tenant.slug}/").status_code == 200
    assert client.get("/support/").status_code == 200
    event = AuditEvent.objects.get(action="second_factor.enrolled")
    assert (event.actor, event.tenant, event.target, event.ip_address) == (user, None, user.username, "127.0.0.1")
    assert event.details == {"method": "totp", "replaced": False, "recovery_codes": 10}

    # At rest: the secret only encrypted, the recovery codes only hashed.
    device = TotpDevice.objects.get(user=user)
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM verify_totpdevice WHERE id = %s", [device.pk])
        raw = cursor.fetchone()[0]
    assert secret not in raw and device.key.reveal() not in raw
    stored = set(RecoveryCode.objects.filter(device__user=user).values_list("code_hash", flat=True))
    assert len(stored) == 10 and not stored & ({c.replace("-", "") for c in codes} | set(codes))

    # The next sign-in asks for a code before anything else.
    client.post("/accounts/logout/")
    landed = sign_in(client, user, next_url="/support/")
    assert path_of(landed) == VERIFY
    assert client.get("/support/").status_code == 302
    verified = client.post(VERIFY, {"code": fresh_totp_code(secret, used_codes), "next": "/support/"})
    assert verified.status_code == 302 and verified["Location"] == "/support/"
    assert client.get("/support/").status_code == 200


def test_tenant_admin_opts_in_and_then_signs_in_in_two_steps(client, tenant, tenant_admin, used_codes):
    landed = sign_in(client, tenant_admin, next_url=f"/t/{tenant.slug}/")
    assert path_of(landed) == f"/t/{tenant.slug}/"  # no second factor yet: the password is enough
    assert "Off: signing in needs only your password" in client.get(MANAGE).content.decode()
    secret, codes, _ = enrol(client, used_codes)
    assert "On: after your password" in client.get(MANAGE).content.decode()

    client.post("/accounts/logout/")
    landed = sign_in(client, tenant_admin, next_url=f"/t/{tenant.slug}/messages/")
    assert path_of(landed) == VERIFY
    # A password alone reaches nothing, the enrol page included (no second device behind its back).
    for page in (f"/t/{tenant.slug}/", ENROL, MANAGE):
        response = client.get(page)
        assert response.status_code == 302 and urlsplit(response["Location"]).path == VERIFY, page
    wrong = client.post(VERIFY, {"code": "000000", "next": f"/t/{tenant.slug}/messages/"})
    assert wrong.status_code == 200 and "That code is not right" in wrong.content.decode()
    right = client.post(VERIFY, {"code": fresh_totp_code(secret, used_codes), "next": f"/t/{tenant.slug}/messages/"})
    assert right.status_code == 302 and right["Location"] == f"/t/{tenant.slug}/messages/"
    assert client.get(f"/t/{tenant.slug}/messages/").status_code == 200


def test_a_code_is_accepted_once(client, tenant_admin, used_codes):
    sign_in(client, tenant_admin)
    secret, _, _ = enrol(client, used_codes)
    code = fresh_totp_code(secret, used_codes)
    client.post("/accounts/logout/")
    sign_in(client, tenant_admin)
    assert client.post(VERIFY, {"code": code}).status_code == 302
    client.post("/accounts/logout/")
    sign_in(client, tenant_admin)
    replayed = client.post(VERIFY, {"code": code})
    assert replayed.status_code == 200 and "That code is not right" in replayed.content.decode()


def test_next_must_be_ours(client, tenant_admin, used_codes):
    sign_in(client, tenant_admin)
    secret, _, _ = enrol(client, used_codes)
    client.post("/accounts/logout/")
    sign_in(client, tenant_admin)
    response = client.post(VERIFY, {"code": fresh_totp_code(secret, used_codes), "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_a_recovery_code_signs_in_once_and_is_audited(client, tenant_admin, used_codes):
    sign_in(client, tenant_admin)
    _, codes, _ = enrol(client, used_codes)
    client.post("/accounts/logout/")
    sign_in(client, tenant_admin)
    used = client.post(VERIFY, {"code": codes[3].upper()}, follow=True)  # typed in capitals: same code
    assert used.status_code == 200 and "You signed in with a recovery code; 9 left" in used.content.decode()
    event = AuditEvent.objects.get(action="second_factor.recovery_code_used")
    assert (event.actor, event.target, event.details) == (tenant_admin, tenant_admin.username, {"left": 9})

    client.post("/accounts/logout/")
    sign_in(client, tenant_admin)
    again = client.post(VERIFY, {"code": codes[3]})
    assert again.status_code == 200 and "That code is not right" in again.content.decode()
    assert client.post(VERIFY, {"code": codes[4]}).status_code == 302


def test_regenerating_recovery_codes_voids_the_old_ones_and_is_audited(client, tenant_admin, used_codes):
    sign_in(client, tenant_admin)
    _, old_codes, _ = enrol(client, used_codes)
    page = client.post(MANAGE + "recovery-codes/")
    new_codes = re.findall(r"<li>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</li>", page.content.decode())
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    event = AuditEvent.objects.get(action="second_factor.recovery_codes_regenerated")
    assert (event.actor, event.tenant, event.target, event.details) == (
        tenant_admin,
        None,
        tenant_admin.username,
        {"recovery_codes": 10},
    )
    client.post("/accounts/logout/")
    sign_in(client, tenant_admin)
    assert client.post(VERIFY, {"code": old_codes[0]}).status_code == 200
    assert client.post(VERIFY, {"code": new_codes[0]}).status_code == 302


def test_tenant_users_may_turn_it_off_staff_may_not(client, tenant_admin, operator, used_codes):
    sign_in(client, tenant_admin)
    enrol(client, used_codes)
    off = client.post(MANAGE + "disable/", follow=True)
    assert "The second factor is off" in off.content.decode()
    event = AuditEvent.objects.get(action="second_factor.disabled")
    assert (event.actor, event.target, event.details) == (tenant_admin, tenant_admin.username, {"by_operator": False})
    assert not TotpDevice.objects.filter(user=tenant_admin).exists()
    assert not RecoveryCode.objects.filter(device__user=tenant_admin).exists()

    client.post("/accounts/logout/")
    sign_in(client, operator)
    enrol(client, used_codes)
    refused = client.post(MANAGE + "disable/", follow=True)
    assert "must keep a second factor" in refused.content.decode()
    assert TotpDevice.objects.filter(user=operator, confirmed=True).exists()
    assert AuditEvent.objects.filter(action="second_factor.disabled").count() == 1


def test_replacing_the_app_keeps_one_device(client, operator, used_codes):
    sign_in(client, operator)
    first, _, _ = enrol(client, used_codes)
    second, _, _ = enrol(client, used_codes)
    assert first != second
    assert TotpDevice.objects.filter(user=operator).count() == 1
    events = AuditEvent.objects.filter(action="second_factor.enrolled").order_by("id")
    assert [e.details["replaced"] for e in events] == [False, True]
    client.post("/accounts/logout/")
    sign_in(client, operator)
    assert client.post(VERIFY, {"code": fresh_totp_code(first, used_codes)}).status_code == 200
    assert client.post(VERIFY, {"code": fresh_totp_code(second, used_codes)}).status_code == 302


def test_the_operator_resets_a_lost_device_and_the_user_enrols_again(client, operator, used_codes):
    support = UserFactory(username="sue-support", support=True)
    sign_in(client, support)
    enrol(client, used_codes)
    client.post("/accounts/logout/")
    call_command("second_factor_reset", support.username, stdout=None)
    event = AuditEvent.objects.get(action="second_factor.disabled")
    assert (event.actor, event.target, event.details) == (None, support.username, {"by_operator": True})
    assert path_of(sign_in(client, support)) == ENROL


def test_enforcement_leaves_public_paths_alone(client, tenant, operator):
    """A signed-in operator who has not passed the second factor: the webhooks, the public consent
    pages, /healthz, static files and sign-out answer as they would for anyone."""
    assert path_of(sign_in(client, operator)) == ENROL
    for path in ("/webhooks/twilio/messaging/status/", "/webhooks/sendgrid/events/"):
        assert client.post(path, {}).status_code in (400, 403), path
    assert client.get("/healthz").status_code in (200, 503)
    assert client.get(f"/c/{tenant.slug}/some-form/").status_code == 404
    assert client.get("/static/css/portal.css").status_code == 404  # not a redirect: no static serving in tests
    assert client.get("/t/acme/").status_code == 302
    assert client.post("/accounts/logout/").status_code in (200, 302)
    assert client.get("/healthz").status_code in (200, 503)


def test_an_unverified_test_client_session_is_refused(client, operator):
    """Without the test suite's sign-in shortcut (this module opts out of it), a session that only
    holds the password step gets nowhere: nothing but the code step marks a session verified."""
    client.force_login(operator)
    response = client.get("/support/")
    assert response.status_code == 302 and urlsplit(response["Location"]).path == ENROL


def test_seeds_provision_an_app_that_signs_in(client, operator, used_codes):
    """What `manage.py demo` and the stack tests use: an enrolled app and fresh recovery codes
    without the pages; run again, it keeps the app and only renews the codes."""
    secret, codes = totp_device_provision(user=operator, audit=SYSTEM)
    again, new_codes = totp_device_provision(user=operator, audit=SYSTEM)
    assert again == secret and not set(codes) & set(new_codes)
    assert [(e.action, e.details["provisioned"]) for e in AuditEvent.objects.order_by("id")] == [
        ("second_factor.enrolled", True),
        ("second_factor.recovery_codes_regenerated", True),
    ]
    assert path_of(sign_in(client, operator, next_url="/operator/")) == VERIFY
    assert client.post(VERIFY, {"code": fresh_totp_code(secret, used_codes), "next": "/operator/"}).status_code == 302
    assert client.get("/operator/").status_code == 200


@pytest.mark.parametrize("kind", ["app", "text", "recovery"])
def test_has_device_is_one_query_over_each_kind_of_confirmed_device_of_this_user_only(
    kind, support_user, django_assert_num_queries
):
    def device(user, *, confirmed):
        fields = {"user": user, "name": kind, "confirmed": confirmed}
        if kind == "app":
            return TotpDevice.objects.create(**fields, key="ab" * 20)
        if kind == "text":
            return SmsDevice.objects.create(**fields, number="+14155550100")
        return RecoveryCodeDevice.objects.create(**fields)

    admin, other = UserFactory(username="ana-admin"), UserFactory(username="otto-other")
    device(admin, confirmed=False)  # an enrolment in progress is not a second factor
    device(other, confirmed=True)
    for user, support in ((admin, False), (support_user, True)):
        user = type(user).objects.get(pk=user.pk)  # nothing remembered on the instance
        with django_assert_num_queries(1):
            assert second_factor_has_device(user=user) is False
        with django_assert_num_queries(0):  # answered by the same query
            assert is_support(user) is support

    device(admin, confirmed=True)
    assert second_factor_has_device(user=admin) is True
