"""Our own 403/404/500 pages: inside the portal's layout with a way back; the 403 says why; a
tenant's 404 reads the same whether the tenant exists or not; the 500 renders without a request
or database."""

import re

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.views.defaults import server_error

from tests.tenants.factories import PASSWORD


def without_csrf(html: bytes) -> bytes:
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b"", html)


def test_read_only_refusal_says_why_inside_the_layout(client, tenant, viewer):
    client.login(username=viewer.username, password=PASSWORD)

    response = client.post(f"/t/{tenant.slug}/members/", {"email": "someone@example.com", "role": "admin"})

    assert response.status_code == 403
    page = response.content.decode()
    assert f"Your role in {tenant.name} is viewer: read-only." in page
    assert f'href="/t/{tenant.slug}/"' in page  # the way back
    assert "Sign out" in page and 'id="portal-sidebar"' in page


def test_unknown_and_foreign_tenants_get_the_same_404(client, tenant, other_admin):
    client.login(username=other_admin.username, password=PASSWORD)

    foreign = client.get(f"/t/{tenant.slug}/messages/")
    missing = client.get("/t/no-such-tenant/messages/")

    assert foreign.status_code == missing.status_code == 404
    assert "Page not found" in foreign.content.decode()
    assert "All tenants" in foreign.content.decode()
    assert without_csrf(foreign.content) == without_csrf(missing.content)
    assert tenant.name.encode() not in foreign.content


@pytest.mark.django_db
def test_500_renders_without_request_context():
    html = render_to_string("500.html")
    assert "Something went wrong" in html and 'href="/"' in html

    response = server_error(RequestFactory().get("/t/acme/"))
    assert response.status_code == 500 and b"Back to the portal" in response.content
