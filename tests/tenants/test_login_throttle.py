"""Sign-in throttling by (account, client address): after LOGIN_FAILURE_LIMIT wrong passwords the
pair is refused, even with the right password, with a page saying when to retry; the same account
from another address still signs in (nobody locks an admin out from elsewhere); the lock lifts
after the cool-off, or when the platform operator unlocks it."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from tenants.login_throttle import login_lockout_ends_at
from tests.tenants.factories import PASSWORD, UserFactory

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"
LOGIN = "/accounts/login/"


def sign_in(client, username: str, password: str, ip: str, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip, **extra)


def signed_in(response) -> bool:
    return response.status_code == 302 and response.wsgi_request.user.is_authenticated


@pytest.fixture
def admin(tenant_admin):
    return tenant_admin


def lock(client, username: str, ip: str = ATTACKER, times: int = 100, **extra) -> None:
    for _ in range(times):
        sign_in(client, username, "wrong-password", ip, **extra)


def test_the_settings_lock_the_pair_not_the_account():
    assert django_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert django_settings.AXES_FAILURE_LIMIT == 5
    assert django_settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert django_settings.AXES_CLIENT_IP_CALLABLE == "tenants.http.client_ip"


def test_a_few_mistakes_then_the_right_password_signs_in(client, admin):
    lock(client, admin.username, times=django_settings.AXES_FAILURE_LIMIT - 1)
    assert signed_in(sign_in(client, admin.username, PASSWORD, ATTACKER))
    # A successful sign-in clears that pair's count: the next mistakes start from zero.
    client.logout()
    lock(client, admin.username, times=django_settings.AXES_FAILURE_LIMIT - 1)
    assert signed_in(sign_in(client, admin.username, PASSWORD, ATTACKER))


def test_100_wrong_passwords_then_the_right_one_is_refused(client, admin):
    lock(client, admin.username)
    response = sign_in(client, admin.username, PASSWORD, ATTACKER)
    assert response.status_code == 429
    assert not response.wsgi_request.user.is_authenticated
    assert "_auth_user_id" not in client.session
    page = response.content.decode()
    assert "Sign-in paused" in page and admin.username in page
    assert 'class="navbar-brand portal-brand' in page  # the portal's layout
    # Failures while locked are not counted: the 5th one set the time, and it stays.
    assert AccessAttempt.objects.get(username=admin.username).failures_since_start == 5


def test_the_lockout_page_says_when_to_retry(client, admin):
    lock(client, admin.username, times=django_settings.AXES_FAILURE_LIMIT)
    ends = login_lockout_ends_at(username=admin.username, ip_address=ATTACKER)
    assert ends is not None and abs(ends - (timezone.now() + timedelta(minutes=15))) < timedelta(minutes=1)
    response = sign_in(client, admin.username, PASSWORD, ATTACKER)
    page = response.content.decode()
    assert f'data-retry-at="{ends.isoformat()}"' in page
    assert ends.strftime("%H:%M") in page and "in about 15 minutes" in page
    assert "platform operator can unlock it" in page


def test_another_address_still_signs_in_to_the_same_account(client, admin):
    lock(client, admin.username)
    assert signed_in(sign_in(client, admin.username, PASSWORD, OWNER))
    # ...and the attacker's address stays refused for that account.
    client.logout()
    assert sign_in(client, admin.username, PASSWORD, ATTACKER).status_code == 429


def test_the_same_address_can_still_sign_in_to_another_account(client, admin, viewer):
    lock(client, admin.username)
    assert signed_in(sign_in(client, viewer.username, PASSWORD, ATTACKER))


def test_a_forged_forwarded_for_does_not_escape_the_lock(client, admin, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    for n in range(20):  # a new claimed address each time, from an untrusted peer
        sign_in(client, admin.username, "wrong", ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    response = sign_in(client, admin.username, PASSWORD, ATTACKER, HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429


def test_behind_our_proxy_the_client_address_counts(client, admin, settings):
    """One proxy in front of everyone: locking the attacker's forwarded address leaves the owner,
    behind the same proxy, signing in."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    lock(client, admin.username, ip="10.0.0.5", HTTP_X_FORWARDED_FOR=ATTACKER)
    assert sign_in(client, admin.username, PASSWORD, "10.0.0.5", HTTP_X_FORWARDED_FOR=ATTACKER).status_code == 429
    assert signed_in(sign_in(client, admin.username, PASSWORD, "10.0.0.5", HTTP_X_FORWARDED_FOR=OWNER))


def test_the_lock_lifts_after_the_cool_off(client, admin):
    lock(client, admin.username)
    assert sign_in(client, admin.username, PASSWORD, ATTACKER).status_code == 429
    # Time passes: the last recorded failure is now older than the cool-off.
    past = timezone.now() - django_settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.filter(username=admin.username).update(attempt_time=past)
    assert signed_in(sign_in(client, admin.username, PASSWORD, ATTACKER))


def test_the_lock_holds_just_before_the_cool_off_ends(client, admin):
    lock(client, admin.username)
    almost = timezone.now() - django_settings.AXES_COOLOFF_TIME + timedelta(seconds=30)
    AccessAttempt.objects.filter(username=admin.username).update(attempt_time=almost)
    assert sign_in(client, admin.username, PASSWORD, ATTACKER).status_code == 429


def test_the_operator_unlocks_with_the_command(client, admin):
    lock(client, admin.username)
    out = io.StringIO()
    call_command("axes_reset_username", admin.username, stdout=out)
    assert "1 attempts removed" in out.getvalue()
    assert signed_in(sign_in(client, admin.username, PASSWORD, ATTACKER))


def test_the_operator_unlocks_in_the_admin(client, admin):
    lock(client, admin.username)
    attempt = AccessAttempt.objects.get(username=admin.username)
    operator = UserFactory(username="root-operator", superuser=True)
    client.force_login(operator)
    listing = client.get(reverse("admin:axes_accessattempt_changelist"))
    assert listing.status_code == 200 and admin.username in listing.content.decode()
    delete = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302
    client.logout()
    assert signed_in(sign_in(client, admin.username, PASSWORD, ATTACKER))


def test_the_limit_and_cool_off_come_from_settings(client, admin, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    lock(client, admin.username, times=2)
    response = sign_in(client, admin.username, PASSWORD, ATTACKER)
    assert response.status_code == 429 and "in about 1 minute)" in response.content.decode()


def test_the_test_client_login_still_works(client, admin):
    """No request, no address to throttle by: `client.login()` passes through to the password check."""
    assert client.login(username=admin.username, password=PASSWORD)
    assert not client.login(username=admin.username, password="wrong")
