"""The tenant navigation: every section reachable from the sidebar, a skip link first."""

import re

from tests.tenants.factories import PASSWORD


def test_sidebar_links_send_templates_and_bulk(client, tenant, tenant_admin):
    client.login(username=tenant_admin.username, password=PASSWORD)

    page = client.get(f"/t/{tenant.slug}/").content.decode()
    sidebar = page[page.index('id="portal-sidebar"') :]

    for path in ("messages/send/", "templates/", "bulk/"):
        assert f'href="/t/{tenant.slug}/{path}"' in sidebar


def test_viewer_sidebar_has_no_send_link(client, tenant, viewer):
    client.login(username=viewer.username, password=PASSWORD)

    page = client.get(f"/t/{tenant.slug}/").content.decode()

    assert f'href="/t/{tenant.slug}/messages/send/"' not in page


def test_skip_link_is_the_first_focusable_element(client, tenant, tenant_admin):
    client.login(username=tenant_admin.username, password=PASSWORD)

    page = client.get(f"/t/{tenant.slug}/messages/").content.decode()
    body = page[page.index("<body") :]
    first = re.search(r"<(a|button|input|select|textarea)\b[^>]*>([^<]*)", body)

    assert first.group(2) == "Skip to content" and 'href="#main"' in first.group(0)
    assert '<main id="main"' in page
