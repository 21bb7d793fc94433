"""Tenant keywords: normalised, no word with two meanings, admins only, audited."""

from __future__ import annotations

from html import unescape

import pytest
from django.urls import reverse

from messaging.models import TenantKeyword
from tenants.models import AuditEvent
from tests.messaging.factories import TenantKeywordFactory

pytestmark = pytest.mark.django_db


def url(tenant, name="keyword_list", **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def add(client, tenant, kind, word):
    return client.post(url(tenant), {"kind": kind, "word": word})


def test_admin_adds_a_normalised_keyword(client, tenant_admin, tenant):
    client.force_login(tenant_admin)
    assert add(client, tenant, "opt_out", "  ¡baja! ").status_code == 302
    keyword = TenantKeyword.objects.for_tenant(tenant).get()
    assert (keyword.kind, keyword.word) == ("opt_out", "BAJA")
    assert AuditEvent.objects.get(tenant=tenant, action="keyword.add").target == "BAJA"
    html = client.get(url(tenant)).content.decode()
    assert "BAJA" in html and "STOP" in html  # own keywords beside Twilio's defaults


@pytest.mark.parametrize(
    ("kind", "word", "error"),
    [
        ("opt_in", "stop", "already a default opt-out keyword"),
        ("opt_out", "Stop", "already a default opt-out keyword"),
        ("help", "baja", "already this tenant's opt-out keyword"),
        ("opt_in", "BAJÁ", "already this tenant's opt-out keyword"),  # accents don't make a new word
        ("opt_out", "!!!", "Enter a keyword"),
    ],
)
def test_collisions_are_refused(client, tenant_admin, tenant, kind, word, error):
    TenantKeywordFactory(tenant=tenant, kind="opt_out", word="BAJA")
    client.force_login(tenant_admin)
    response = add(client, tenant, kind, word)
    assert response.status_code == 200 and error in unescape(response.content.decode())
    assert TenantKeyword.objects.for_tenant(tenant).count() == 1


def test_another_tenants_keyword_does_not_collide_or_show(client, tenant_admin, tenant, other_tenant):
    TenantKeywordFactory(tenant=other_tenant, kind="opt_in", word="GLOBEXGO")
    client.force_login(tenant_admin)
    assert "GLOBEXGO" not in client.get(url(tenant)).content.decode()
    assert add(client, tenant, "opt_out", "globexgo").status_code == 302


def test_remove_is_audited_and_scoped(client, tenant_admin, tenant, other_tenant):
    mine = TenantKeywordFactory(tenant=tenant, kind="opt_out", word="ARRET")
    theirs = TenantKeywordFactory(tenant=other_tenant, kind="opt_out", word="ARRET")
    client.force_login(tenant_admin)
    assert client.post(url(tenant, "keyword_remove", keyword_id=theirs.id)).status_code == 404
    assert client.post(url(tenant, "keyword_remove", keyword_id=mine.id)).status_code == 302
    assert not TenantKeyword.objects.for_tenant(tenant).exists()
    assert TenantKeyword.objects.for_tenant(other_tenant).exists()
    assert AuditEvent.objects.get(tenant=tenant, action="keyword.remove").target == "ARRET"


def test_viewer_and_support_read_only(client, viewer, support_user, tenant):
    for user in (viewer, support_user):
        client.force_login(user)
        response = client.get(url(tenant))
        assert response.status_code == 200 and "Add a keyword" not in response.content.decode()
        assert add(client, tenant, "opt_out", "BAJA").status_code == 403
    assert not TenantKeyword.objects.for_tenant(tenant).exists()
