"""Revocation review queue: urgent first, overdue impossible to miss, decisions by admins."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from messaging.context_processors import revocations
from messaging.ledgers.reachability import number_is_opted_out
from messaging.models import RevocationReview
from tenants.models import AuditEvent
from tenants.scoping import TenantAccess
from tests.messaging.factories import CUSTOMER, OTHER_CUSTOMER, RevocationReviewFactory, ago

pytestmark = pytest.mark.django_db


def url(tenant, name="revocation_list", **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


@pytest.fixture
def queue(tenant, other_tenant):
    return {
        "later": RevocationReviewFactory(
            tenant=tenant, phone=CUSTOMER, body="stop texting me", received_at=ago(days=1)
        ),
        "overdue": RevocationReviewFactory(
            tenant=tenant,
            phone=OTHER_CUSTOMER,
            body="no more messages",
            received_at=ago(days=20),
            deadline_at=ago(days=6),
        ),
        "other": RevocationReviewFactory(tenant=other_tenant, phone="+14155550177", body="GLOBEX PLEASE STOP"),
    }


def test_open_items_sorted_by_deadline_with_overdue_badge(client, viewer, tenant, queue):
    client.force_login(viewer)
    response = client.get(url(tenant))
    assert [r.id for r in response.context["open_reviews"]] == [queue["overdue"].id, queue["later"].id]
    html = response.content.decode()
    assert "OVERDUE" in html and "1 overdue" in html and "past the deadline" in html
    assert "GLOBEX" not in html
    assert "Confirm: opt out" not in html  # viewers decide nothing


def test_support_sees_masked_numbers(client, support_user, tenant, queue):
    client.force_login(support_user)
    html = client.get(url(tenant)).content.decode()
    assert "+1******0100" in html and CUSTOMER not in html and OTHER_CUSTOMER not in html


def test_confirm_opts_out_and_moves_to_history(client, tenant_admin, tenant, queue):
    client.force_login(tenant_admin)
    response = client.post(url(tenant, "revocation_confirm", review_id=queue["later"].id), {"note": ""})
    assert response.status_code == 302
    assert number_is_opted_out(tenant=tenant, phone=CUSTOMER)
    assert AuditEvent.objects.filter(tenant=tenant, action="revocation.confirm").count() == 1
    page = client.get(url(tenant))
    assert [r.id for r in page.context["decided"]] == [queue["later"].id]
    assert [r.id for r in page.context["open_reviews"]] == [queue["overdue"].id]
    # Deciding twice is refused with a message, not an error page.
    again = client.post(url(tenant, "revocation_confirm", review_id=queue["later"].id), follow=True)
    assert "already" in again.content.decode()


def test_dismiss_requires_a_note(client, tenant_admin, tenant, queue):
    client.force_login(tenant_admin)
    review = queue["overdue"]
    response = client.post(url(tenant, "revocation_dismiss", review_id=review.id), {"note": "  "}, follow=True)
    assert "needs a note" in response.content.decode()
    review.refresh_from_db()
    assert review.status == "open"
    client.post(url(tenant, "revocation_dismiss", review_id=review.id), {"note": "Asked about the store closing"})
    review.refresh_from_db()
    assert (review.status, review.decision_note, review.decided_by) == (
        "dismissed",
        "Asked about the store closing",
        tenant_admin,
    )
    assert not number_is_opted_out(tenant=tenant, phone=OTHER_CUSTOMER)
    html = client.get(url(tenant)).content.decode()
    assert "Late" in html  # decided after the deadline


def test_another_tenants_review_cannot_be_decided(client, tenant_admin, tenant, queue):
    client.force_login(tenant_admin)
    theirs = queue["other"]
    assert client.post(url(tenant, "revocation_confirm", review_id=theirs.id)).status_code == 404
    assert client.post(url(tenant, "revocation_dismiss", review_id=theirs.id), {"note": "x"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == RevocationReview.Status.OPEN


def test_viewer_cannot_decide(client, viewer, tenant, queue):
    client.force_login(viewer)
    assert client.post(url(tenant, "revocation_confirm", review_id=queue["later"].id)).status_code == 403


def test_context_processor_counts_overdue_for_the_current_tenant_only(tenant, other_tenant, queue):
    RevocationReviewFactory(
        tenant=other_tenant, phone="+14155550178", received_at=ago(days=30), deadline_at=ago(days=10)
    )
    request = RequestFactory().get("/")
    request.tenant, request.tenant_access = tenant, TenantAccess("viewer")
    assert revocations(request) == {"overdue_revocations": 1}
    request.tenant = None
    assert revocations(request) == {}


def test_banner_snippet(tenant):
    html = render_to_string("messaging/_overdue_banner.html", {"overdue_revocations": 2, "current_tenant": tenant})
    assert "2 overdue" in html and f"/t/{tenant.slug}/revocations/" in html
    assert (
        render_to_string("messaging/_overdue_banner.html", {"overdue_revocations": 0, "current_tenant": tenant}).strip()
        == ""
    )
