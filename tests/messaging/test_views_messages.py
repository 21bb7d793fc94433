"""Message log and message detail: filters, keyset paging, masking, tenant isolation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from messaging.models import Message
from tests.messaging.factories import CUSTOMER, OUR_NUMBER, SERVICE, MessageEventFactory, MessageFactory, ago

pytestmark = pytest.mark.django_db


def url(tenant, name="message_list", **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def page_ids(response) -> list[int]:
    return [m.id for m in response.context["page"].rows]


@pytest.fixture
def log(tenant, other_tenant):
    """A few messages of tenant A and one of tenant B that must never show up."""
    rows = {
        "in": MessageFactory(tenant=tenant, direction="inbound", status="received", body="Hi there", at=ago(hours=3)),
        "out": MessageFactory(tenant=tenant, body="Your code is 1234", at=ago(hours=2), messaging_service_sid=SERVICE),
        "failed": MessageFactory(
            tenant=tenant,
            customer="+14155550123",
            status="undelivered",
            error_code=30003,
            at=ago(days=3),
            body="Promo",
        ),
        "other": MessageFactory(tenant=other_tenant, customer="+14155550177", body="GLOBEX SECRET", at=ago(hours=1)),
    }
    return rows


@pytest.mark.parametrize("who", ["tenant_admin", "viewer"])
def test_members_see_full_numbers_newest_first(client, request, tenant, log, who):
    client.force_login(request.getfixturevalue(who))
    response = client.get(url(tenant))
    assert response.status_code == 200
    assert page_ids(response) == [log["out"].id, log["in"].id, log["failed"].id]
    html = response.content.decode()
    assert CUSTOMER in html and "Your code is 1234" in html


def test_other_tenants_messages_never_listed(client, tenant_admin, tenant, log):
    client.force_login(tenant_admin)
    html = client.get(url(tenant)).content.decode()
    assert "GLOBEX SECRET" not in html and "+14155550177" not in html
    html = client.get(url(tenant), {"phone": "+14155550177"}).content.decode()
    assert "GLOBEX SECRET" not in html


def test_support_sees_masked_numbers_only(client, support_user, tenant, log):
    client.force_login(support_user)
    response = client.get(url(tenant))
    html = response.content.decode()
    assert response.status_code == 200
    assert "+1******0100" in html
    for number in (CUSTOMER, OUR_NUMBER, "+14155550123"):
        assert number not in html
    detail = client.get(url(tenant, "message_detail", message_id=log["in"].id)).content.decode()
    assert "+1******0100" in detail and CUSTOMER not in detail and OUR_NUMBER not in detail


def test_filters(client, tenant_admin, tenant, log):
    client.force_login(tenant_admin)

    def ids(**params):
        response = client.get(url(tenant), params)
        assert response.status_code == 200
        return set(page_ids(response))

    assert ids(direction="inbound") == {log["in"].id}
    assert ids(status="undelivered") == {log["failed"].id}
    assert ids(error_code="30003") == {log["failed"].id}
    assert ids(messaging_service_sid=SERVICE) == {log["out"].id}
    # The number is normalised: national format finds the E.164 row, from or to.
    assert ids(phone="(415) 555-0100") == {log["in"].id, log["out"].id}
    assert ids(phone="415.555.0123") == {log["failed"].id}
    today = timezone.now().date()
    assert ids(created_from=str(today - timedelta(days=1))) == {log["in"].id, log["out"].id}
    assert ids(created_to=str(today - timedelta(days=2))) == {log["failed"].id}
    assert ids(direction="outbound", error_code="30003") == {log["failed"].id}


def test_invalid_filter_shows_an_error_and_no_rows(client, tenant_admin, tenant, log):
    client.force_login(tenant_admin)
    response = client.get(url(tenant), {"phone": "12"})
    assert response.status_code == 200
    assert page_ids(response) == []
    assert "is not a valid number" in response.content.decode() or "not a phone number" in response.content.decode()
    response = client.get(url(tenant), {"messaging_service_sid": "MG123"})
    assert page_ids(response) == [] and "Messaging Service SID is MG" in response.content.decode()
    response = client.get(url(tenant), {"created_from": "2025-05-02", "created_to": "2025-05-01"})
    assert "before the start date" in response.content.decode()


def test_keyset_pagination_walks_every_row_once_without_counting(client, tenant_admin, tenant, other_tenant):
    same_moment = ago(days=1)
    made = [MessageFactory(tenant=tenant, body=f"m{i}", at=ago(minutes=i) if i % 3 else same_moment) for i in range(60)]
    MessageFactory(tenant=other_tenant, body="not yours", at=ago(minutes=5))
    expected = [m.id for m in sorted(made, key=lambda m: (m.created_at, m.id), reverse=True)]
    client.force_login(tenant_admin)

    seen: list[int] = []
    cursors: list[str | None] = [None]
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url(tenant))
        while True:
            page = response.context["page"]
            seen.extend(m.id for m in page.rows)
            if not page.older_cursor:
                break
            cursors.append(page.older_cursor)
            response = client.get(url(tenant), {"cursor": page.older_cursor})
    assert seen == expected  # no duplicate, no gap, newest first
    assert len(cursors) == 2  # 50 + 10
    assert "Older →" not in response.content.decode() and "← Newer" in response.content.decode()
    message_sql = [q["sql"] for q in queries.captured_queries if "messaging_message" in q["sql"]]
    assert message_sql and not any("COUNT(" in sql.upper() for sql in message_sql)

    # And back: "← Newer" from the last page is the first page again.
    newer = response.context["page"].newer_cursor
    back = client.get(url(tenant), {"cursor": newer})
    assert page_ids(back) == expected[:50]


def test_keyset_keeps_filters_and_ignores_a_tampered_cursor(client, tenant_admin, tenant):
    for i in range(55):
        MessageFactory(
            tenant=tenant, direction="inbound" if i % 2 else "outbound", status="received" if i % 2 else "sent"
        )
    client.force_login(tenant_admin)
    first = client.get(url(tenant), {"direction": "outbound"})
    page = first.context["page"]
    assert len(page.rows) == 28 and page.older_cursor is None
    first = client.get(url(tenant))
    older_link = re.search(r'href="\?([^"]*cursor=[^"]*)" rel="next"', first.content.decode())
    assert older_link
    second = client.get(url(tenant), {"cursor": first.context["page"].older_cursor, "direction": "inbound"})
    assert all(m.direction == "inbound" for m in second.context["page"].rows)
    tampered = client.get(url(tenant), {"cursor": "eyJrIjoxfQ:bad:sig"})
    assert tampered.status_code == 200 and len(tampered.context["page"].rows) == 50


def test_detail_shows_timeline_error_and_explanation(client, viewer, tenant):
    message = MessageFactory(
        tenant=tenant,
        status="undelivered",
        error_code=30003,
        media=[
            {
                "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
                "content_type": "image/png",
            }
        ],
        num_media=1,
    )
    MessageEventFactory(message=message, status="queued", occurred_at=ago(minutes=3))
    MessageEventFactory(message=message, status="sent", occurred_at=ago(minutes=2))
    MessageEventFactory(message=message, status="undelivered", occurred_at=ago(minutes=1), error_code=30003)
    client.force_login(viewer)
    html = client.get(url(tenant, "message_detail", message_id=message.id)).content.decode()
    timeline = html[html.index("Status timeline") :]
    assert timeline.index("Queued") < timeline.index("Sent") < timeline.index("Undelivered")
    assert "30003" in html and "unreachable" in html.lower()
    assert "/Media/ME1" in html and "image/png" in html


def test_detail_of_purged_body_says_so(client, viewer, tenant):
    message = MessageFactory(tenant=tenant, body="")
    Message.objects.for_tenant(tenant).filter(pk=message.pk).update(body_purged_at=timezone.now())
    client.force_login(viewer)
    html = client.get(url(tenant, "message_detail", message_id=message.id)).content.decode()
    assert "Body purged" in html


def test_detail_of_another_tenants_message_is_404(client, tenant_admin, tenant, other_tenant):
    theirs = MessageFactory(tenant=other_tenant, body="GLOBEX SECRET")
    client.force_login(tenant_admin)
    assert client.get(url(tenant, "message_detail", message_id=theirs.id)).status_code == 404
