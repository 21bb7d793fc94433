"""Members join by invitation: an admin invites an email address with a role and hands over a
one-time, expiring link; whoever opens it signs in or creates an account and accepts.

A tenant admin can no longer attach an existing account by name (the operator, support staff)
nor learn which accounts exist; platform staff accounts never join through a link; the link is
stored only as a keyed hash and works once. Which roles reach each URL is test_isolation.py's
matrix; the audit rows are test_audit_coverage.py's."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from tenants.audit import SYSTEM, AuditContext
from tenants.invitations import (
    InvitationRefused,
    InvitationUnusable,
    invitation_accept,
    invitation_create,
    invitation_revoke,
)
from tenants.models import AuditEvent, Invitation, Membership, Tenant
from tests.tenants.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

STRONG_PASSWORD = "Lantern-Orbit-42-Quay"


def members_url(tenant) -> str:
    return f"/t/{tenant.slug}/members/"


def link_path(url: str) -> str:
    return urlsplit(url).path


def token_of(url: str) -> str:
    return link_path(url).rstrip("/").rsplit("/", 1)[1]


def invite(tenant, email="new@example.com", role="viewer", by=None):
    return invitation_create(tenant=tenant, email=email, role=role, audit=AuditContext.of(by) if by else SYSTEM)


# --- The admin's side ------------------------------------------------------------------------------


def test_admin_gets_the_link_once_and_only_its_hash_is_stored(client, tenant, tenant_admin):
    client.force_login(tenant_admin)

    response = client.post(members_url(tenant), {"email": "New.Person@Example.COM", "role": "admin"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert "does not send invitation emails yet" in page
    links = re.findall(r"https?://[^\"<\s]+/invite/[A-Za-z0-9_-]+/", page)
    assert len(set(links)) == 1
    token = token_of(links[0])
    invitation = Invitation.all_tenants.get()
    assert (invitation.tenant, invitation.email, invitation.role) == (tenant, "New.Person@example.com", "admin")
    assert invitation.created_by == tenant_admin
    assert invitation.token_hash == Invitation.token_hash_for(token) and token not in invitation.token_hash
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenants_invitation")
        assert token not in repr(cursor.fetchall())  # the raw token is stored nowhere
    event = AuditEvent.objects.get(action="invitation.created")
    assert token not in repr((event.target, event.reason, event.details))
    # Shown once: the page afterwards lists the invitation, without its link.
    again = client.get(members_url(tenant)).content.decode()
    assert "New.Person@example.com" in again and token not in again and "/invite/" not in again


def test_the_answer_is_the_same_whether_a_user_with_that_email_exists(client, tenant, tenant_admin, support_user):
    UserFactory(username="known", email="known@example.com")
    support_user.email = "support@platform.example"
    support_user.save()
    client.force_login(tenant_admin)

    def answer(email):
        response = client.post(members_url(tenant), {"email": email, "role": "viewer"})
        html = response.content.decode().replace(email, "EMAIL")
        html = re.sub(r"/invite/[A-Za-z0-9_-]+/", "/invite/TOKEN/", html)
        html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)
        html = re.sub(r"<tbody>.*?</tbody>", "", html, flags=re.S)  # the pending list grows by one each time
        return response.status_code, html

    assert answer("known@example.com") == answer("unknown@example.com") == answer("support@platform.example")
    # Nobody was attached: the accounts exist, but only an invitation was made.
    assert not Membership.objects.filter(tenant=tenant).exclude(user=tenant_admin).exists()


def test_an_address_that_is_not_one_is_refused_by_the_form(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    response = client.post(members_url(tenant), {"email": "support-staff", "role": "admin"})
    assert response.status_code == 200 and "Enter a valid email address" in response.content.decode()
    assert not Invitation.all_tenants.exists()


def test_admin_revokes_a_pending_invitation_and_its_link_dies(client, tenant, tenant_admin):
    created = invite(tenant, by=tenant_admin)
    client.force_login(tenant_admin)

    response = client.post(f"/t/{tenant.slug}/members/invitations/{created.invitation.pk}/revoke/", follow=True)

    assert "its link no longer works" in response.content.decode()
    assert "new@example.com" not in re.sub(r'<div class="alert.*?</div>', "", response.content.decode(), flags=re.S)
    client.logout()
    gone = client.get(link_path(created.url))
    assert gone.status_code == 410 and "withdrawn" in gone.content.decode()
    # A second revoke changes nothing and records nothing.
    assert invitation_revoke(invitation=created.invitation, audit=SYSTEM) is False
    assert AuditEvent.objects.filter(action="invitation.revoked").count() == 1


def test_inviting_the_same_address_again_replaces_the_lost_link(tenant, tenant_admin):
    first = invite(tenant, email="new@example.com", by=tenant_admin)
    second = invite(tenant, email="NEW@example.com", role="admin", by=tenant_admin)

    assert Invitation.all_tenants.get(pk=first.invitation.pk).revoked_at is not None
    assert Invitation.all_tenants.get(pk=second.invitation.pk).revoked_at is None
    replaced = AuditEvent.objects.get(action="invitation.revoked")
    assert replaced.details["replaced"] is True and replaced.details["invitation"] == first.invitation.pk


def test_the_link_expires_after_the_configured_days(client, tenant, settings):
    settings.INVITATION_VALID_DAYS = 2
    created = invite(tenant)
    expected = created.invitation.created_at + timedelta(days=2)
    assert abs(created.invitation.expires_at - expected) < timedelta(seconds=5)

    Invitation.all_tenants.filter(pk=created.invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.get(link_path(created.url))
    assert response.status_code == 410 and "expired" in response.content.decode()
    with pytest.raises(InvitationUnusable) as refused:
        invitation_accept(token=token_of(created.url), user=UserFactory(), audit=SYSTEM)
    assert refused.value.status == 410


# --- The invitee's side ----------------------------------------------------------------------------


def test_a_new_person_creates_an_account_and_joins(client, tenant):
    created = invite(tenant, email="new@example.com", role="admin")
    path = link_path(created.url)

    page = client.get(path)
    assert page.status_code == 200 and tenant.name in page.content.decode()

    response = client.post(
        path, {"action": "signup", "username": "nora", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD}
    )

    assert response.status_code == 302 and response["Location"] == f"/t/{tenant.slug}/"
    nora = get_user_model().objects.get(username="nora")
    assert nora.email == "new@example.com" and nora.check_password(STRONG_PASSWORD)
    assert Membership.objects.get(user=nora).role == "admin"
    assert client.get(f"/t/{tenant.slug}/").status_code == 200  # signed in
    invitation = Invitation.all_tenants.get()
    assert invitation.accepted_by == nora and invitation.accepted_at is not None
    events = AuditEvent.objects.filter(action__in=["membership.added", "invitation.accepted"])
    assert {(e.action, e.actor, e.target) for e in events} == {
        ("membership.added", nora, "nora"),
        ("invitation.accepted", nora, "nora"),
    }


@pytest.mark.parametrize(
    "password, error",
    [("short", "too short"), ("password123", "too common"), ("nora-nora-nora", "too similar")],
)
def test_a_new_account_needs_a_password_djangos_validators_accept(client, tenant, password, error):
    created = invite(tenant)

    data = {"action": "signup", "username": "nora-nora-nora", "password1": password, "password2": password}

    response = client.post(link_path(created.url), data)

    assert response.status_code == 200 and error in response.content.decode()
    assert not get_user_model().objects.filter(username="nora-nora-nora").exists()
    assert Invitation.all_tenants.get().accepted_at is None


def test_a_taken_username_is_refused(client, tenant, viewer):
    created = invite(tenant)
    data = {"action": "signup", "username": viewer.username, "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD}
    response = client.post(link_path(created.url), data)
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert Invitation.all_tenants.get().accepted_at is None


def test_someone_of_another_tenant_signs_in_and_accepts(client, tenant, other_tenant, other_admin):
    created = invite(tenant, email="bob@globex.example")
    path = link_path(created.url)

    signed_in = client.post(f"/accounts/login/?next={path}", {"username": other_admin.username, "password": PASSWORD})
    assert signed_in["Location"] == path
    page = client.get(path).content.decode()
    assert f"Accept as {other_admin.username}" in page

    response = client.post(path, {"action": "accept"})

    assert response.status_code == 302
    assert Membership.objects.get(user=other_admin, tenant=tenant).role == "viewer"
    assert Membership.objects.get(user=other_admin, tenant=other_tenant).role == "admin"  # untouched


@pytest.mark.parametrize("kind", ["superuser", "staff", "support"])
def test_platform_staff_can_never_join_through_a_link(client, tenant, kind):
    staff = {
        "superuser": lambda: UserFactory(username="olga", superuser=True),
        "staff": lambda: UserFactory(username="stan", is_staff=True),
        "support": lambda: UserFactory(username="sam", support=True),
    }[kind]()
    created = invite(tenant, email="staff@platform.example", role="admin")
    client.force_login(staff)
    path = link_path(created.url)

    page = client.get(path).content.decode()
    assert "platform staff account" in page and "Accept as" not in page

    response = client.post(path, {"action": "accept"})

    assert response.status_code == 403 and "separate account" in response.content.decode()
    assert not Membership.objects.filter(user=staff).exists()
    assert Invitation.all_tenants.get().accepted_at is None  # still usable by a proper account
    assert not AuditEvent.objects.filter(action="invitation.accepted").exists()
    with pytest.raises(InvitationRefused):
        invitation_accept(token=token_of(created.url), user=staff, audit=SYSTEM)


def test_an_existing_member_is_refused_and_the_link_stays_unused(client, tenant, viewer):
    created = invite(tenant, role="admin")
    client.force_login(viewer)

    response = client.post(link_path(created.url), {"action": "accept"})

    assert response.status_code == 403 and "already a member" in response.content.decode()
    assert Membership.objects.get(user=viewer, tenant=tenant).role == "viewer"  # no promotion by link
    assert Invitation.all_tenants.get().accepted_at is None


def test_the_link_works_once(client, tenant):
    created = invite(tenant)
    first, second = UserFactory(username="first"), UserFactory(username="second")
    path = link_path(created.url)
    client.force_login(first)
    assert client.post(path, {"action": "accept"}).status_code == 302
    # The same person again (a double click): back to the tenant, nothing written twice.
    assert client.post(path, {"action": "accept"})["Location"] == f"/t/{tenant.slug}/"
    assert invitation_accept(token=token_of(created.url), user=first, audit=SYSTEM)[1] is False
    assert AuditEvent.objects.filter(action="invitation.accepted").count() == 1

    client.force_login(second)
    response = client.post(path, {"action": "accept"})
    assert response.status_code == 410 and "already been used" in response.content.decode()
    client.logout()
    data = {"action": "signup", "username": "third", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD}
    assert client.post(path, data).status_code == 410
    assert not get_user_model().objects.filter(username="third").exists()  # no account from a dead link
    assert list(Membership.objects.filter(tenant=tenant).values_list("user__username", flat=True)) == ["first"]


def test_a_closed_tenant_takes_no_new_members(client, tenant):
    created = invite(tenant)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.CLOSED)
    client.force_login(UserFactory())
    response = client.post(link_path(created.url), {"action": "accept"})
    assert response.status_code == 410 and "closed" in response.content.decode()
    assert not Membership.objects.filter(tenant=tenant).exists()


def test_an_unknown_link_is_404_and_says_so(client, tenant):
    invite(tenant)
    response = client.get("/invite/abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG/")
    assert response.status_code == 404 and "not valid" in response.content.decode()


def test_links_survive_a_secret_key_rotation(client, tenant, settings):
    created = invite(tenant)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-for-this-test-0123456789"
    client.force_login(UserFactory(username="late"))

    assert client.post(link_path(created.url), {"action": "accept"}).status_code == 302
    assert Membership.objects.filter(user__username="late", tenant=tenant).exists()


@pytest.mark.django_db(transaction=True)
def test_two_people_racing_for_one_link_cannot_both_join(tenant):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    created = invite(tenant)
    users = [UserFactory(username=f"racer-{i}") for i in range(2)]
    barrier = threading.Barrier(2)
    outcomes = []

    def accept(user):
        barrier.wait()
        try:
            invitation_accept(token=token_of(created.url), user=user, audit=SYSTEM)
            outcomes.append("joined")
        except InvitationUnusable:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=accept, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["joined", "refused"]
    assert Membership.objects.filter(tenant=tenant).count() == 1
