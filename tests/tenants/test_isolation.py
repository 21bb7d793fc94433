"""Every portal URL against every role: anonymous, admin of A, viewer of A, admin of B, support.

Pages of tenant A: members and support read (200), admin of B sees nothing (404, not 403, so
A's existence isn't confirmed), anonymous goes to the login page. Writes: only A's admins.
A new portal URL must be added to PAGES/WRITES below, or test_every_tenant_url_is_covered fails.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import PASSWORD

ROLES = ["anonymous", "admin_a", "viewer_a", "admin_b", "support"]

# url name -> expected GET status per role (anonymous is always a login redirect)
READ_OK = {"admin_a": 200, "viewer_a": 200, "admin_b": 404, "support": 200}
ADMIN_ONLY_READ = {"admin_a": 200, "viewer_a": 403, "admin_b": 404, "support": 403}
PAGES = {
    "tenant_dashboard": ({}, READ_OK),
    "tenant_settings": ({}, READ_OK),
    "tenant_members": ({}, READ_OK),
    "tenant_audit_log": ({}, ADMIN_ONLY_READ),
    "message_list": ({}, READ_OK),
    "opt_out_list": ({}, READ_OK),
    "consent_list": ({}, READ_OK),
    "number_list": ({}, READ_OK),
    "call_list": ({}, READ_OK),
    "verification_list": ({}, READ_OK),
}
WRITE_OK = {"admin_a": 302, "viewer_a": 403, "admin_b": 404, "support": 403}
# url name -> (kwargs factory, POST data factory)
WRITES = {
    "tenant_settings": (
        lambda ctx: {},
        lambda ctx: {
            "name": "Acme Renamed",
            "timezone": "America/Chicago",
            "keyword_replies": "twilio",
            "messaging_service_sid": "",
            "verify_service_sid": "",
            "help_text": "",
            "stop_text": "",
            "sender_email": "",
        },
    ),
    "tenant_members": (lambda ctx: {}, lambda ctx: {"username": ctx["extra_user"].username, "role": "viewer"}),
    "tenant_member_remove": (lambda ctx: {"membership_id": ctx["viewer_membership"].id}, lambda ctx: {}),
}


@pytest.fixture
def ctx(client, tenant, other_tenant, tenant_admin, viewer, other_admin, support_user, django_user_model):
    from tenants.models import Membership

    return {
        "tenant": tenant,
        "users": {"admin_a": tenant_admin, "viewer_a": viewer, "admin_b": other_admin, "support": support_user},
        "extra_user": django_user_model.objects.create_user("newcomer", password=PASSWORD),
        "viewer_membership": Membership.objects.get(user=viewer, tenant=tenant),
    }


def login_as(client, ctx, role):
    if role != "anonymous":
        client.force_login(ctx["users"][role])


def tenant_url(name, tenant, **kwargs):
    from django.urls import reverse

    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_access(client, ctx, name, role):
    kwargs, expected = PAGES[name]
    url = tenant_url(name, ctx["tenant"], **kwargs)
    login_as(client, ctx, role)
    response = client.get(url)
    if role == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    else:
        assert response.status_code == expected[role], (name, role)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(WRITES))
def test_write_access(client, ctx, name, role):
    from tenants.models import AuditEvent

    kwargs_f, data_f = WRITES[name]
    url = tenant_url(name, ctx["tenant"], **kwargs_f(ctx))
    login_as(client, ctx, role)
    before = AuditEvent.objects.count()
    response = client.post(url, data_f(ctx))
    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    else:
        assert response.status_code == WRITE_OK[role], (name, role, response.content[:300])
    if role == "admin_a":
        assert AuditEvent.objects.count() > before  # every admin change is audited
    else:
        assert AuditEvent.objects.count() == before  # and a refused one writes nothing


def test_other_tenant_root_is_404_not_403(client, ctx):
    client.force_login(ctx["users"]["admin_b"])
    assert client.get(f"/t/{ctx['tenant'].slug}/").status_code == 404
    assert client.get("/t/no-such-tenant/").status_code == 404


def test_user_in_two_tenants_sees_both(client, ctx, other_tenant):
    from tenants.models import Membership

    user = ctx["users"]["viewer_a"]
    Membership.objects.create(user=user, tenant=other_tenant, role="admin")
    client.force_login(user)
    assert client.get(f"/t/{other_tenant.slug}/settings/").status_code == 200
    home = client.get("/")
    assert home.status_code == 200
    assert b"Acme" in home.content and b"Globex" in home.content


def test_support_overview_only_for_support(client, ctx):
    client.force_login(ctx["users"]["support"])
    assert client.get("/support/").status_code == 200
    client.force_login(ctx["users"]["admin_a"])
    assert client.get("/support/").status_code == 403


def test_support_sees_masked_numbers_in_template_tag(rf, ctx):
    from django.template import Context, Template

    from tenants.scoping import TenantAccess

    template = Template("{% load portal %}{% phone number %}")
    masked = template.render(Context({"number": "+14155554567", "tenant_access": TenantAccess("support")}))
    full = template.render(Context({"number": "+14155554567", "tenant_access": TenantAccess("viewer")}))
    assert masked == "+1******4567"
    assert full == "+14155554567"


def _tenant_url_names():
    names = set()

    def walk(patterns, inside):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, inside or "tenant_slug" in str(p.pattern))
            elif isinstance(p, URLPattern) and inside and p.name:
                names.add(p.name)

    walk(get_resolver().url_patterns, False)
    return names


def test_every_tenant_url_is_covered():
    uncovered = _tenant_url_names() - set(PAGES) - set(WRITES)
    assert not uncovered, f"add these portal URLs to the isolation matrix: {sorted(uncovered)}"
