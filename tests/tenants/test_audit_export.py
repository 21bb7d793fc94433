"""The audit log page's filters (actor, action, date range), its keyset paging and its CSV export.

Who reads the log is unchanged: the tenant's admins and superusers; viewers and support staff
get 403 for the page and the export alike.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db

HEADER = "at,actor,action,target,reason,ip"


def event(tenant, action, *, actor="alice-admin", at, target="", reason="", ip=None) -> AuditEvent:
    created = AuditEvent.objects.create(
        tenant=tenant, actor_label=actor, action=action, target=target, reason=reason, ip_address=ip
    )
    AuditEvent.objects.filter(pk=created.pk).update(created_at=at)  # queryset update: fixtures only
    return created


@pytest.fixture
def events(tenant, other_tenant):
    return [
        event(
            tenant,
            "opt_out.add",
            at=datetime(2025, 1, 1, 9, 0, 0, tzinfo=UTC),
            target="+1******0100",
            ip="203.0.113.7",
            reason="=1+2",
        ),
        event(tenant, "export.messages", actor="victor-viewer", at=datetime(2025, 2, 1, 10, 30, 0, tzinfo=UTC)),
        event(tenant, "export.consent", at=datetime(2025, 3, 1, 11, 45, 5, tzinfo=UTC), target="consent"),
        event(other_tenant, "export.messages", actor="bob-admin-of-b", at=datetime(2025, 2, 1, tzinfo=UTC)),
    ]


def export(client, params=None) -> tuple[StreamingHttpResponse, list[str]]:
    response = client.get(reverse("tenant_audit_export", kwargs={"tenant_slug": "acme"}), params or {})
    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    return response, b"".join(response.streaming_content).decode().splitlines()


def test_audit_export_header_rows_and_times(client, tenant_admin, events):
    client.force_login(tenant_admin)
    response, lines = export(client)
    assert lines[0] == HEADER
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-acme-')
    rows = list(csv.reader(io.StringIO("\n".join(lines[1:]))))
    # The export's own audit row was written before streaming, so it is the newest line.
    assert rows[0][1:4] == ["alice-admin", "export.audit", "audit log"] and rows[0][0].endswith("Z")
    assert rows[1:] == [
        ["2025-03-01T11:45:05Z", "alice-admin", "export.consent", "consent", "", ""],
        ["2025-02-01T10:30:00Z", "victor-viewer", "export.messages", "", "", ""],
        ["2025-01-01T09:00:00Z", "alice-admin", "opt_out.add", "+1******0100", "'=1+2", "203.0.113.7"],
    ]
    assert "bob-admin-of-b" not in "\n".join(lines)


def test_audit_export_and_page_apply_the_same_filters(client, tenant_admin, events):
    client.force_login(tenant_admin)

    def exported(params):
        return [line.split(",")[2] for line in export(client, params)[1][1:]]

    def listed(params):
        response = client.get(reverse("tenant_audit_log", kwargs={"tenant_slug": "acme"}), params)
        return [e.action for e in response.context["page"].rows]

    for params, expected in (
        ({"actor": "VICTOR-viewer"}, ["export.messages"]),
        ({"action": "export.", "created_to": "2025-12-31"}, ["export.consent", "export.messages"]),
        ({"created_from": "2025-01-01", "created_to": "2025-02-01"}, ["export.messages", "opt_out.add"]),
        ({"created_from": "2025-02-02", "created_to": "2025-02-01"}, []),  # invalid range: nothing
    ):
        assert listed(params) == expected, params
        assert exported(params) == expected, params


def test_audit_page_is_keyset_paginated_and_links_the_export(client, tenant, tenant_admin):
    for i in range(55):
        event(tenant, "keyword.add", at=datetime(2025, 1, 1, 0, i, tzinfo=UTC), target=f"W{i}")
    client.force_login(tenant_admin)
    page_url = reverse("tenant_audit_log", kwargs={"tenant_slug": "acme"})
    first = client.get(page_url, {"action": "keyword"})
    assert len(first.context["page"].rows) == 50 and first.context["page"].older_cursor
    assert "/t/acme/audit/export.csv?action=keyword" in first.content.decode()
    second = client.get(page_url, {"action": "keyword", "cursor": first.context["page"].older_cursor})
    assert [e.target for e in second.context["page"].rows] == ["W4", "W3", "W2", "W1", "W0"]


@pytest.mark.parametrize("role", ["viewer", "support_user"])
def test_audit_export_stays_with_those_who_read_the_log(request, client, events, role):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("tenant_audit_export", kwargs={"tenant_slug": "acme"})).status_code == 403
    assert not AuditEvent.objects.filter(action="export.audit").exists()
