"""Wrong second-factor codes are throttled per (account, client address) like wrong passwords:
after AXES_FAILURE_LIMIT of them the pair is refused, even with the right code, with a page
saying when to retry; signing in again with the right password does not reset the count; the
same account from another address still gets its tries; the lock lifts after the cool-off, or
when the operator unlocks it (`manage.py second_factor_unlock`, audited)."""

from __future__ import annotations

import io

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from tenants.models import AuditEvent
from tests.tenants.factories import PASSWORD
from tests.verify.second_factor_helpers import fresh_totp_code, sign_in_device
from verify.models import SecondFactorThrottle
from verify.second_factor.throttle import code_lock_ends_at

pytestmark = pytest.mark.real_second_factor

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"
VERIFY = "/accounts/second-factor/verify/"


@pytest.fixture
def secret(tenant_admin) -> str:
    return sign_in_device(tenant_admin).key.reveal()


def password_step(client, user, ip: str) -> None:
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=ip)
    assert response.status_code == 302 and response.wsgi_request.user.is_authenticated


def code(client, value: str, ip: str):
    return client.post(VERIFY, {"code": value}, REMOTE_ADDR=ip)


def wrong_codes(client, ip: str, times: int) -> None:
    for _ in range(times):
        assert code(client, "000000", ip).status_code in (200, 429)


def test_the_limit_and_cool_off_are_the_login_ones():
    assert django_settings.AXES_FAILURE_LIMIT == 5


def test_wrong_codes_lock_the_pair_with_a_clear_message(client, tenant_admin, secret):
    password_step(client, tenant_admin, ATTACKER)
    wrong_codes(client, ATTACKER, django_settings.AXES_FAILURE_LIMIT - 1)
    last = code(client, "000000", ATTACKER)
    assert last.status_code == 429
    page = last.content.decode()
    assert "Too many wrong codes" in page and tenant_admin.username in page and "ask the platform operator" in page
    assert "in about 15 minutes" in page

    # Locked: even the right code is refused, and trying does not extend the lock.
    ends_at = code_lock_ends_at(username=tenant_admin.username, ip_address=ATTACKER)
    refused = code(client, fresh_totp_code(secret, set()), ATTACKER)
    assert refused.status_code == 429 and client.get("/").status_code == 302
    assert code_lock_ends_at(username=tenant_admin.username, ip_address=ATTACKER) == ends_at

    # The right password again does not clear the count (axes would: the lock is ours), and the
    # code page says so at once.
    client.post("/accounts/logout/")
    password_step(client, tenant_admin, ATTACKER)
    shown = client.get(VERIFY, REMOTE_ADDR=ATTACKER)
    assert shown.status_code == 429 and "Too many wrong codes" in shown.content.decode()
    assert code(client, fresh_totp_code(secret, set()), ATTACKER).status_code == 429


def test_the_owner_elsewhere_is_not_locked_out(client, tenant_admin, secret):
    password_step(client, tenant_admin, ATTACKER)
    wrong_codes(client, ATTACKER, 50)
    client.post("/accounts/logout/")
    password_step(client, tenant_admin, OWNER)
    assert code(client, fresh_totp_code(secret, set()), OWNER).status_code == 302


def test_a_right_code_clears_the_count(client, tenant_admin, secret):
    used: set = set()
    password_step(client, tenant_admin, OWNER)
    wrong_codes(client, OWNER, django_settings.AXES_FAILURE_LIMIT - 1)
    assert code(client, fresh_totp_code(secret, used), OWNER).status_code == 302
    assert not SecondFactorThrottle.objects.exists()


def test_the_lock_lifts_after_the_cool_off(client, tenant_admin, secret):
    password_step(client, tenant_admin, ATTACKER)
    wrong_codes(client, ATTACKER, django_settings.AXES_FAILURE_LIMIT)
    assert code(client, fresh_totp_code(secret, set()), ATTACKER).status_code == 429
    # The cool-off passes (counted from the last wrong code before the lock).
    SecondFactorThrottle.objects.update(
        last_failure_at=timezone.now() - django_settings.AXES_COOLOFF_TIME - timezone.timedelta(seconds=1)
    )
    assert code(client, fresh_totp_code(secret, set()), ATTACKER).status_code == 302


def test_the_operator_unlocks_it_now(client, tenant_admin, secret):
    password_step(client, tenant_admin, ATTACKER)
    wrong_codes(client, ATTACKER, django_settings.AXES_FAILURE_LIMIT)
    assert code(client, fresh_totp_code(secret, set()), ATTACKER).status_code == 429

    out = io.StringIO()
    call_command("second_factor_unlock", tenant_admin.username, stdout=out)
    assert f"Unlocked {tenant_admin.username}: 1 address(es) cleared." in out.getvalue()
    event = AuditEvent.objects.get(action="second_factor.unlocked")
    assert (event.actor, event.tenant, event.target, event.details) == (
        None,
        None,
        tenant_admin.username,
        {"ip_address": "every address", "pairs": 1},
    )
    assert code(client, fresh_totp_code(secret, set()), ATTACKER).status_code == 302

    out = io.StringIO()
    call_command("second_factor_unlock", tenant_admin.username, "--ip", ATTACKER, stdout=out)
    assert "No second-factor lock on record" in out.getvalue()
    assert AuditEvent.objects.filter(action="second_factor.unlocked").count() == 1
