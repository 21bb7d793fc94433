"""A tenant always keeps an active admin: nobody (not even the operator) demotes or removes the
last one; the operator suspends or closes the tenant instead."""

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tenants.audit import SYSTEM, AuditContext
from tenants.models import AuditEvent, Membership
from tenants.services import LastAdminError, membership_remove, membership_set
from tests.tenants.factories import PASSWORD, UserFactory


def role_url(tenant, user) -> str:
    return f"/t/{tenant.slug}/members/{Membership.objects.get(user=user, tenant=tenant).pk}/role/"


def test_last_admin_cannot_demote_themselves(client, tenant, tenant_admin):
    client.login(username=tenant_admin.username, password=PASSWORD)

    response = client.post(role_url(tenant, tenant_admin), {"role": "viewer"}, follow=True)

    assert response.status_code == 200
    assert "must keep at least one active admin" in response.content.decode()
    assert Membership.objects.get(user=tenant_admin).role == "admin"
    assert not AuditEvent.objects.exists()


def test_admin_may_demote_themselves_when_another_admin_remains(client, tenant, tenant_admin, django_user_model):
    UserFactory(username="second-admin", tenant=tenant, role="admin")
    client.login(username=tenant_admin.username, password=PASSWORD)

    response = client.post(role_url(tenant, tenant_admin), {"role": "viewer"})

    assert response.status_code == 302
    assert Membership.objects.get(user=tenant_admin).role == "viewer"
    event = AuditEvent.objects.get(action="membership.changed")
    assert (event.details["old_role"], event.details["new_role"]) == ("admin", "viewer")


def test_an_inactive_admin_does_not_count(tenant, tenant_admin, django_user_model):
    UserFactory(username="gone-admin", tenant=tenant, role="admin").__class__.objects.filter(
        username="gone-admin"
    ).update(is_active=False)

    with pytest.raises(LastAdminError):
        membership_set(user=tenant_admin, tenant=tenant, role="viewer", audit=SYSTEM)


def test_operator_cannot_remove_the_last_admin(client, tenant, tenant_admin, django_user_model):
    operator = UserFactory(username="olga-operator", superuser=True)
    client.login(username=operator.username, password=PASSWORD)
    membership = Membership.objects.get(user=tenant_admin)

    response = client.post(f"/t/{tenant.slug}/members/{membership.id}/remove/", follow=True)

    assert "suspend or close the tenant instead" in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists()
    assert not AuditEvent.objects.exists()


def test_service_refuses_to_remove_the_last_admin(tenant, tenant_admin):
    with pytest.raises(LastAdminError):
        membership_remove(membership=Membership.objects.get(user=tenant_admin), audit=SYSTEM)
    assert Membership.objects.filter(user=tenant_admin).exists()


def test_create_portal_user_cannot_demote_the_last_admin(tenant, tenant_admin):
    with pytest.raises(CommandError, match="at least one active admin"):
        call_command("create_portal_user", tenant_admin.username, "--tenant", tenant.slug, "--role", "viewer")
    assert Membership.objects.get(user=tenant_admin).role == "admin"


def test_audit_log_shows_old_and_new_role(client, tenant, tenant_admin, viewer):
    membership_set(user=viewer, tenant=tenant, role="admin", audit=AuditContext.of(tenant_admin))
    client.login(username=tenant_admin.username, password=PASSWORD)

    page = client.get(f"/t/{tenant.slug}/audit/").content.decode()

    assert "viewer → admin" in page


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_demotions_cannot_both_pass(tenant, django_user_model):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    first = UserFactory(username="first-admin", tenant=tenant, role="admin")
    second = UserFactory(username="second-admin", tenant=tenant, role="admin")
    barrier = threading.Barrier(2)
    outcomes = []

    def demote(user):
        barrier.wait()
        try:
            membership_set(user=user, tenant=tenant, role="viewer", audit=SYSTEM)
            outcomes.append("demoted")
        except LastAdminError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=demote, args=(u,)) for u in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["demoted", "refused"]
    assert Membership.objects.filter(tenant=tenant, role="admin").count() == 1
