"""The list pages' CSV exports: messages, opt-outs, consent and a bulk send's recipients.

Contract with operators' scripts: the exact header lines, ISO-8601 UTC times ending in Z, the
list page's query parameters as filters, one tenant's rows only, numbers masked for support
staff, formula-like cells neutralised, and rows streamed in constant memory.
"""

from __future__ import annotations

import csv
import io
import tracemalloc
from datetime import UTC, datetime

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from messaging.models import BulkSend, Message, MessageTemplate
from tests.messaging.factories import CUSTOMER, OUR_NUMBER, ConsentEventFactory, MessageFactory, OptOutEventFactory

pytestmark = pytest.mark.django_db

MESSAGE_HEADER = "sid,direction,from,to,status,error_code,segments,created_at,updated_at"
OPT_OUT_HEADER = "phone,state,keyword,source,changed_at"
CONSENT_HEADER = "phone,purpose,state,method,source,captured_at,revoked_at"
RECIPIENT_HEADER = "phone,status,error_code,gate_reason,sid"
OTHER = "+14155550177"
WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def url(name, tenant, **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def download(client, name, tenant, params=None, **kwargs) -> tuple[StreamingHttpResponse, list[str], list[dict]]:
    response = client.get(url(name, tenant, **kwargs), params or {})
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    lines = text.splitlines()
    return response, lines, list(csv.DictReader(io.StringIO(text)))


def make_bulk(tenant, name="Spring") -> BulkSend:
    template = MessageTemplate.objects.create(tenant=tenant, name=name, purpose="transactional", body="Hi")
    return BulkSend.objects.create(
        tenant=tenant, name=name, template=template, purpose="transactional", sender=OUR_NUMBER, status="running"
    )


@pytest.fixture
def users(tenant_admin, viewer, support_user):
    return {"admin": tenant_admin, "viewer": viewer, "support": support_user}


# --- Messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role, shown", [("admin", CUSTOMER), ("viewer", CUSTOMER), ("support", "+1******0100")])
def test_message_export_header_rows_and_masking(client, tenant, users, role, shown):
    MessageFactory(tenant=tenant, sid="SM" + "a" * 32, status="undelivered", error_code=30003, num_segments=2, at=WHEN)
    client.force_login(users[role])
    response, lines, rows = download(client, "message_export", tenant)
    assert lines[0] == MESSAGE_HEADER
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="messages-acme-')
    assert rows == [
        {
            "sid": "SM" + "a" * 32,
            "direction": "outbound",
            "from": OUR_NUMBER if role != "support" else "+1******0199",
            "to": shown,
            "status": "undelivered",
            "error_code": "30003",
            "segments": "2",
            "created_at": "2025-03-04T05:06:07Z",
            "updated_at": "2025-03-04T05:06:07Z",  # no status change yet: the creation time
        }
    ]


def test_message_export_applies_the_list_filters(client, tenant, tenant_admin):
    bulk = make_bulk(tenant)
    inbound = MessageFactory(tenant=tenant, direction="inbound", status="received", at=datetime(2025, 1, 1, tzinfo=UTC))
    failed = MessageFactory(tenant=tenant, status="failed", error_code=30007, at=datetime(2025, 2, 1, tzinfo=UTC))
    other = MessageFactory(tenant=tenant, customer=OTHER, status="delivered", at=datetime(2025, 3, 1, tzinfo=UTC))
    in_bulk = MessageFactory(
        tenant=tenant, status="blocked", bulk_send=bulk, gate_reason="opted_out", messaging_service_sid=""
    )
    pending = MessageFactory(tenant=tenant, status="pending", messaging_service_sid="MG" + "b" * 32)
    client.force_login(tenant_admin)

    def sids(params):
        return {row["sid"] for row in download(client, "message_export", tenant, params)[2]}

    assert sids({}) == {m.sid for m in (inbound, failed, other, in_bulk, pending)}
    assert sids({"direction": "inbound"}) == {inbound.sid}
    assert sids({"status": "failed"}) == {failed.sid}
    assert sids({"status": "pending"}) == {pending.sid}
    assert sids({"error_code": "30007"}) == {failed.sid}
    assert sids({"phone": OTHER}) == {other.sid}
    assert sids({"created_from": "2025-01-15", "created_to": "2025-03-01"}) == {failed.sid, other.sid}
    assert sids({"bulk": bulk.pk}) == {in_bulk.sid}
    assert sids({"messaging_service_sid": "MG" + "b" * 32}) == {pending.sid}
    assert sids({"created_from": "2025-03-02", "created_to": "2025-03-01"}) == set()  # invalid: nothing
    assert sids({"cursor": "whatever", "status": "failed"}) == {failed.sid}  # the pager's cursor is ignored


def test_message_export_never_holds_another_tenants_rows(client, tenant, other_tenant, tenant_admin):
    mine = MessageFactory(tenant=tenant)
    theirs = MessageFactory(tenant=other_tenant)
    their_bulk = make_bulk(other_tenant)
    MessageFactory(tenant=other_tenant, bulk_send=their_bulk)
    client.force_login(tenant_admin)
    assert [r["sid"] for r in download(client, "message_export", tenant)[2]] == [mine.sid]
    assert theirs.sid not in b"".join(client.get(url("message_export", tenant)).streaming_content).decode()
    # Another tenant's bulk send is not a choice here: an invalid filter, so no rows at all.
    assert download(client, "message_export", tenant, {"bulk": their_bulk.pk})[2] == []


def test_message_list_offers_the_tenants_bulk_sends_and_an_export_link(client, tenant, other_tenant, tenant_admin):
    bulk = make_bulk(tenant, "Spring")
    make_bulk(other_tenant, "Their secret campaign")
    in_bulk = MessageFactory(tenant=tenant, bulk_send=bulk, body="in the bulk")
    MessageFactory(tenant=tenant, body="one-off")
    client.force_login(tenant_admin)
    response = client.get(url("message_list", tenant), {"bulk": bulk.pk, "status": "delivered"})
    html = response.content.decode()
    assert "Spring" in html and "Their secret campaign" not in html
    assert "in the bulk" in html and "one-off" not in html
    assert f"/t/acme/messages/export.csv?bulk={bulk.pk}&amp;status=delivered" in html
    assert in_bulk.pk


def test_formula_cells_are_neutralised_and_numbers_are_not(client, tenant, tenant_admin):
    ConsentEventFactory(tenant=tenant, purpose="transactional", source='=HYPERLINK("http://evil.example","x")')
    OptOutEventFactory(tenant=tenant, keyword="@SUM(1)")
    MessageFactory(tenant=tenant, sid="=cmd|' /C calc'!A0")
    client.force_login(tenant_admin)
    (consent,) = download(client, "consent_export", tenant)[2]
    assert consent["source"] == '\'=HYPERLINK("http://evil.example","x")'
    assert consent["phone"] == CUSTOMER  # E.164 keeps its +
    (opt_out,) = download(client, "opt_out_export", tenant)[2]
    assert opt_out["keyword"] == "'@SUM(1)" and opt_out["phone"] == CUSTOMER
    (message,) = download(client, "message_export", tenant)[2]
    assert message["sid"] == "'=cmd|' /C calc'!A0"


# --- Opt-outs and consent --------------------------------------------------------------------------


@pytest.mark.parametrize("role, shown", [("admin", CUSTOMER), ("viewer", CUSTOMER), ("support", "+1******0100")])
def test_opt_out_export_is_each_numbers_current_state(client, tenant, other_tenant, users, role, shown):
    OptOutEventFactory(tenant=tenant, phone=CUSTOMER, keyword="STOP", created_at=datetime(2025, 1, 1, tzinfo=UTC))
    OptOutEventFactory(tenant=tenant, phone=CUSTOMER, action="opt_in", source="admin", created_at=WHEN, reason="asked")
    OptOutEventFactory(tenant=tenant, phone=OTHER, keyword="STOP", created_at=datetime(2025, 2, 1, tzinfo=UTC))
    OptOutEventFactory(tenant=other_tenant, phone="+14155550166", keyword="STOP")
    client.force_login(users[role])
    response, lines, rows = download(client, "opt_out_export", tenant)
    assert lines[0] == OPT_OUT_HEADER and response["Cache-Control"] == "no-store"
    assert rows[0] == {
        "phone": shown,
        "state": "opted_in",
        "keyword": "",
        "source": "admin",
        "changed_at": "2025-03-04T05:06:07Z",
    }
    assert [r["state"] for r in rows] == ["opted_in", "opted_out"] and len(rows) == 2  # one row per number
    assert "0166" not in "\n".join(lines)
    assert [r["state"] for r in download(client, "opt_out_export", tenant, {"state": "opt_out"})[2]] == ["opted_out"]
    assert len(download(client, "opt_out_export", tenant, {"q": "0177"})[2]) == 1
    assert download(client, "opt_out_export", tenant, {"q": "not a number!"})[2] == []


@pytest.mark.parametrize("role, shown", [("admin", CUSTOMER), ("viewer", CUSTOMER), ("support", "+1******0100")])
def test_consent_export_is_each_numbers_current_state_per_purpose(client, tenant, other_tenant, users, role, shown):
    ConsentEventFactory(
        tenant=tenant, purpose="marketing", captured_at=datetime(2025, 1, 1, tzinfo=UTC), source="spring form"
    )
    ConsentEventFactory(tenant=tenant, purpose="marketing", action="revoked", method="keyword", captured_at=WHEN)
    ConsentEventFactory(
        tenant=tenant, purpose="transactional", captured_at=datetime(2025, 2, 1, tzinfo=UTC), method="paper"
    )
    ConsentEventFactory(
        tenant=tenant,
        phone=OTHER,
        purpose="marketing",
        action="revoked",
        method="keyword",
        captured_at=datetime(2025, 2, 2, tzinfo=UTC),
    )
    ConsentEventFactory(tenant=other_tenant, phone="+14155550166", purpose="marketing")
    client.force_login(users[role])
    response, lines, rows = download(client, "consent_export", tenant)
    assert lines[0] == CONSENT_HEADER and response["Cache-Control"] == "no-store"
    assert len(rows) == 3 and "0166" not in "\n".join(lines)
    assert rows[0] == {
        "phone": shown,
        "purpose": "marketing",
        "state": "revoked",
        "method": "keyword",
        "source": "",
        "captured_at": "2025-01-01T00:00:00Z",  # the grant the revocation ended
        "revoked_at": "2025-03-04T05:06:07Z",
    }
    assert rows[1]["captured_at"] == "" and rows[1]["revoked_at"] == "2025-02-02T00:00:00Z"  # never granted
    assert rows[2]["purpose"] == "transactional" and rows[2]["state"] == "granted"
    assert rows[2]["captured_at"] == "2025-02-01T00:00:00Z" and rows[2]["revoked_at"] == ""

    def rows_for(params):
        return [(r["purpose"], r["state"]) for r in download(client, "consent_export", tenant, params)[2]]

    assert rows_for({"purpose": "transactional"}) == [("transactional", "granted")]
    assert rows_for({"action": "revoked"}) == [("marketing", "revoked"), ("marketing", "revoked")]
    assert rows_for({"method": "paper"}) == [("transactional", "granted")]
    assert rows_for({"q": "0177"}) == [("marketing", "revoked")]


# --- Bulk send recipients --------------------------------------------------------------------------


@pytest.mark.parametrize("role, shown", [("admin", CUSTOMER), ("viewer", CUSTOMER), ("support", "+1******0100")])
def test_bulk_recipients_export_and_page(client, tenant, other_tenant, users, role, shown):
    bulk = make_bulk(tenant)
    MessageFactory(tenant=tenant, bulk_send=bulk, sid="SM" + "c" * 32, status="failed", error_code=30006)
    MessageFactory(tenant=tenant, bulk_send=bulk, customer=OTHER, sid=None, status="blocked", gate_reason="opted_out")
    MessageFactory(tenant=tenant, sid="SM" + "d" * 32)  # a one-off send: not a recipient
    client.force_login(users[role])
    response, lines, rows = download(client, "bulk_recipients_export", tenant, bulk_id=bulk.pk)
    assert lines[0] == RECIPIENT_HEADER and response["Cache-Control"] == "no-store"
    assert sorted(map(tuple, (r.values() for r in rows))) == sorted(
        [
            (shown, "failed", "30006", "", "SM" + "c" * 32),
            (OTHER if role != "support" else "+1******0177", "blocked", "", "opted_out", ""),
        ]
    )
    page = client.get(url("bulk_detail", tenant, bulk_id=bulk.pk)).content.decode()
    assert "Recipients" in page and "SM" + "c" * 32 in page and "SM" + "d" * 32 not in page
    assert (CUSTOMER in page) == (role != "support")
    assert f"/t/acme/bulk/{bulk.pk}/recipients.csv" in page
    their_bulk = make_bulk(other_tenant)
    assert client.get(url("bulk_recipients_export", tenant, bulk_id=their_bulk.pk)).status_code == 404


def test_bulk_detail_recipients_are_keyset_paginated(client, tenant, tenant_admin):
    bulk = make_bulk(tenant)
    Message.objects.bulk_create(
        Message(
            tenant=tenant,
            direction="outbound",
            from_number=OUR_NUMBER,
            to_number=f"+1415555{i:04d}",
            status="sent",
            bulk_send=bulk,
        )
        for i in range(60)
    )
    client.force_login(tenant_admin)
    first = client.get(url("bulk_detail", tenant, bulk_id=bulk.pk))
    older = first.context["recipients"].older_cursor
    assert len(first.context["recipients"].rows) == 50 and older
    second = client.get(url("bulk_detail", tenant, bulk_id=bulk.pk), {"cursor": older})
    assert len(second.context["recipients"].rows) == 10
    assert {m.pk for m in first.context["recipients"].rows}.isdisjoint(m.pk for m in second.context["recipients"].rows)


# --- Constant memory --------------------------------------------------------------------------------


def test_message_export_streams_in_constant_memory(client, tenant, tenant_admin):
    """20,000 messages inserted set-based; consuming the export must stay far below what holding
    every row at once takes (measured the same way, on the same rows)."""
    Message.objects.bulk_create(
        (
            Message(
                tenant=tenant,
                direction="outbound",
                sid=f"SM{i:032d}",
                from_number=OUR_NUMBER,
                to_number=f"+1415{i:07d}",
                status="delivered",
                num_segments=1,
            )
            for i in range(20_000)
        ),
        batch_size=2000,
    )
    client.force_login(tenant_admin)
    response = client.get(url("message_export", tenant))
    assert isinstance(response, StreamingHttpResponse)
    assert not hasattr(response, "content")  # never rendered whole

    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        lines = size = 0
        for chunk in response.streaming_content:
            lines += chunk.count(b"\n")
            size += len(chunk)
        streamed_peak = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        everything = list(Message.objects.for_tenant(tenant).values_list())
        materialised_peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert lines == 20_001 and len(everything) == 20_000
    assert streamed_peak < materialised_peak / 4, (streamed_peak, materialised_peak)
    # One fetched chunk of rows and one written chunk of lines at a time, whatever the row count.
    assert streamed_peak < 8 * 2**20 and size > 2 * 2**20, (streamed_peak, size)
