"""The small-scale speed table: statements per webhook and per message log page, and (on
PostgreSQL, sequential scans off) the index each log query walks. A query that creeps back in,
or a filter that loses its index, fails here long before it shows at 2 million messages."""

from __future__ import annotations

import re
from wsgiref.util import setup_testing_defaults

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from commsportal.wsgi import application
from messaging.filters import message_filtered
from messaging.models import Message, TenantKeyword
from tenants import webhooks
from tenants.models import Tenant
from tenants.pagination import keyset_page
from tests.conftest import random_sid
from tests.messaging.test_status_webhook import CUSTOMER, OUR_NUMBER, outbound, post_status

pytestmark = pytest.mark.django_db

INBOUND = "/webhooks/twilio/messaging/inbound/"


def post_inbound(twilio_webhook, tenant, body: str, **extra):
    params = {
        "AccountSid": tenant.account_sid,
        "MessageSid": random_sid("SM"),
        "From": CUSTOMER,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
        **extra,
    }
    return twilio_webhook.post(INBOUND, params, token=tenant.auth_token.reveal())


def statements(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries]


# --- webhooks ------------------------------------------------------------------------------------


def test_status_callback_is_one_statement_on_postgresql(postgresql, twilio_webhook, tenant):
    first = outbound(tenant, sid=random_sid("SM"), status="sent", num_segments=1)
    post_status(twilio_webhook, tenant, first.sid, "queued")  # the gateway now holds the tenant
    message = outbound(tenant, sid=random_sid("SM"), status="sent", num_segments=1)
    with CaptureQueriesContext(connection) as queries:
        assert post_status(twilio_webhook, tenant, message.sid, "delivered").status_code == 204
    sql = statements(queries)
    assert len(sql) == 1, sql  # no tenant query, no BEGIN/SAVEPOINT, no SELECT … FOR UPDATE
    assert "ON CONFLICT" in sql[0] and "FOR UPDATE" not in sql[0]
    with CaptureQueriesContext(connection) as queries:  # a duplicate costs the same
        assert post_status(twilio_webhook, tenant, message.sid, "delivered").status_code == 204
    assert len(queries) == 1
    assert Message.all_tenants.get(pk=message.pk).status == "delivered"


def test_status_callback_21610_and_unknown_sid_take_the_locked_path(postgresql, twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="sent", num_segments=1)
    with CaptureQueriesContext(connection) as queries:
        post_status(twilio_webhook, tenant, message.sid, "undelivered", ErrorCode="21610")
    assert any("FOR NO KEY UPDATE" in sql for sql in statements(queries))
    with CaptureQueriesContext(connection) as queries:
        post_status(twilio_webhook, tenant, random_sid("SM"), "sent")
    assert any("FOR NO KEY UPDATE" in sql for sql in statements(queries))


def test_status_callback_statement_budget(twilio_webhook, tenant, django_assert_max_num_queries):
    """Either database: the general path stays bounded (SQLite always takes it)."""
    warm = outbound(tenant, sid=random_sid("SM"), status="sent", num_segments=1)
    post_status(twilio_webhook, tenant, warm.sid, "queued")
    message = outbound(tenant, sid=random_sid("SM"), status="sent", num_segments=1)
    with django_assert_max_num_queries(8):
        assert post_status(twilio_webhook, tenant, message.sid, "delivered").status_code == 204


def test_plain_inbound_is_one_statement_on_postgresql(postgresql, twilio_webhook, tenant):
    post_inbound(twilio_webhook, tenant, "warm up")  # the gateway now holds the tenant and its keywords
    with CaptureQueriesContext(connection) as queries:
        response = post_inbound(twilio_webhook, tenant, "Is my order ready for pickup?")
    assert response.status_code == 200
    sql = statements(queries)
    assert len(sql) == 1, sql  # message + event in one INSERT
    assert "ON CONFLICT" in sql[0]


def test_a_new_keyword_reaches_the_held_keywords_at_once(twilio_webhook, tenant):
    post_inbound(twilio_webhook, tenant, "warm up")
    TenantKeyword.objects.create(tenant=tenant, kind="opt_out", word="BASTA")
    post_inbound(twilio_webhook, tenant, "basta")
    assert Message.objects.for_tenant(tenant).get(body="basta").keyword == "opt_out"


def test_inbound_statement_budget(twilio_webhook, tenant, django_assert_max_num_queries):
    post_inbound(twilio_webhook, tenant, "warm up")
    with django_assert_max_num_queries(8):
        assert post_inbound(twilio_webhook, tenant, "Is my order ready for pickup?").status_code == 200


def test_held_credentials_cost_no_query_and_a_rotation_drops_them(twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="sent", num_segments=1)
    post_status(twilio_webhook, tenant, message.sid, "queued")
    with CaptureQueriesContext(connection) as queries:
        post_status(twilio_webhook, tenant, message.sid, "sent", token="f" * 32)  # forged: 403
    assert not any("tenants_tenant" in sql for sql in statements(queries))
    old = tenant.auth_token.reveal()
    tenant.auth_token = "e" * 32
    tenant.save()  # as every service that changes a tenant does
    assert post_status(twilio_webhook, tenant, message.sid, "sent", token=old).status_code == 403
    assert post_status(twilio_webhook, tenant, message.sid, "sent", token="e" * 32).status_code == 204


def test_a_change_made_by_another_process_reaches_held_credentials_within_the_check_window(
    twilio_webhook, tenant, monkeypatch
):
    """Another process's save bumps only the shared version token (this process holds the old
    row): a burst reads that token once per window, and the next window drops the old token."""
    message = outbound(tenant, sid=random_sid("SM"), status="sent", num_segments=1)
    old = tenant.auth_token.reveal()
    assert post_status(twilio_webhook, tenant, message.sid, "queued", token=old).status_code == 204
    reads = []
    real_get = webhooks.cache.get
    monkeypatch.setattr(webhooks.cache, "get", lambda key, *a, **k: reads.append(key) or real_get(key, *a, **k))
    for _ in range(10):
        assert post_status(twilio_webhook, tenant, message.sid, "queued", token=old).status_code == 204
    assert len(reads) <= 1  # at most one read if the window ran out during the burst
    Tenant.objects.filter(pk=tenant.pk).update(auth_token="e" * 32)  # the other process's write
    webhooks.cache.set(webhooks._CREDENTIALS_VERSION_KEY, "changed elsewhere", timeout=None)
    monkeypatch.setattr(webhooks, "CREDENTIALS_VERSION_CHECK_SECONDS", 0)  # the window has passed
    assert post_status(twilio_webhook, tenant, message.sid, "sent", token=old).status_code == 403
    assert post_status(twilio_webhook, tenant, message.sid, "sent", token="e" * 32).status_code == 204


def test_refused_webhooks_write_nothing_to_the_database(twilio_webhook, tenant):
    message = outbound(tenant, sid=random_sid("SM"), status="sent", num_segments=1)
    post_status(twilio_webhook, tenant, message.sid, "queued")
    post_status(twilio_webhook, tenant, message.sid, "sent", token="f" * 32)  # the first flushes
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            assert post_status(twilio_webhook, tenant, message.sid, "sent", token="f" * 32).status_code == 403
    assert statements(queries) == []


# --- message log pages -----------------------------------------------------------------------------


def _fill(tenant, n: int = 60) -> None:
    Message.objects.bulk_create(
        Message(
            tenant=tenant,
            direction="outbound" if i % 3 else "inbound",
            sid=random_sid("SM"),
            status=("undelivered" if i % 5 == 0 else "delivered") if i % 3 else "received",
            error_code=30003 if i % 3 and i % 5 == 0 else None,
            from_number=OUR_NUMBER,
            to_number=CUSTOMER if i % 40 == 0 else f"+1415556{i:04d}",
        )
        for i in range(n)
    )


PAGES = [
    {},
    {"status": "delivered"},
    {"direction": "inbound"},
    {"error_code": "30003"},
    {"phone": CUSTOMER},
    {"created_from": "2020-01-01"},
]


@pytest.mark.parametrize("params", PAGES, ids=lambda p: ",".join(p) or "all")
def test_log_page_queries_do_not_grow_with_the_rows(client, tenant, tenant_admin, params):
    client.force_login(tenant_admin)
    url = reverse("message_list", kwargs={"tenant_slug": tenant.slug})
    _fill(tenant, 2)
    client.get(url, params)  # renders the filter form once (tenants.rendered): later pages reuse it
    with CaptureQueriesContext(connection) as few:
        assert client.get(url, params).status_code == 200
    _fill(tenant, 120)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url, params)
    assert response.status_code == 200
    # session, user, the second factor's device check (which also answers the support-group
    # question), tenant with role, the rows, the page chrome (alerts, overdue reviews, tenant
    # switcher), the bulk-send choices: none of them grows with the messages.
    assert len(many) == len(few) <= 9, statements(many)
    assert not any("COUNT(" in sql.upper() and "messaging_message" in sql for sql in statements(many))
    cursor = re.search(r'cursor=([^"&]+)" rel="next"', response.content.decode())
    if cursor:
        client.get(url, {**params, "cursor": cursor.group(1)})  # the bound form's own first render
        with CaptureQueriesContext(connection) as older:
            assert client.get(url, {**params, "cursor": cursor.group(1)}).status_code == 200
        assert len(older) == len(few)


def _plan(tenant, params: dict, *, older: bool, ordered: bool = True) -> str:
    """EXPLAIN of the query the log runs for `params` (first page, or the page after it).

    A test table is tiny, and for a hundred rows the planner rightly prefers reading them all
    and sorting. With sequential scans, bitmap scans and sorts priced out it must show the plan
    that matters at millions of rows: an index that yields the page's rows already in order.
    (`ordered=False`: only sequential scans priced out, for filters whose rows are few.)"""
    filters, qs = message_filtered(tenant=tenant, params=params)
    cursor = keyset_page(qs, cursor=None).older_cursor if older else None
    with CaptureQueriesContext(connection) as queries:
        keyset_page(qs, cursor=cursor)
    with connection.cursor() as db:
        priced_out = ("enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_incremental_sort")
        for setting in priced_out if ordered else priced_out[:1]:
            db.execute(f"SET LOCAL {setting} = off")
        db.execute("EXPLAIN " + queries.captured_queries[-1]["sql"])
        return "\n".join(row[0] for row in db.fetchall())


@pytest.mark.services
@pytest.mark.parametrize(
    "params,index",
    [
        ({}, "message_tenant_recent"),
        ({"status": "delivered"}, "message_tenant_status"),
        ({"direction": "inbound"}, "message_tenant_direction"),
        ({"error_code": "30003"}, "message_tenant_error"),
        ({"created_from": "2020-01-01"}, "message_tenant_recent"),
    ],
)
@pytest.mark.parametrize("older", [False, True], ids=["first", "next"])
def test_log_queries_walk_their_index(postgresql, tenant, params, index, older):
    _fill(tenant, 120)
    with connection.cursor() as db:
        db.execute("ANALYZE messaging_message")
    plan = _plan(tenant, params, older=older)
    assert index in plan, plan
    assert "Sort" not in plan, plan  # the index gives the order: no sort of the tenant's rows
    assert "Seq Scan" not in plan, plan


@pytest.mark.services
def test_phone_filter_uses_the_number_indexes(postgresql, tenant):
    _fill(tenant, 400)
    with connection.cursor() as db:
        db.execute("ANALYZE messaging_message")
    """One customer's messages are few: an index on each number column (a BitmapOr: the
    tenant's (tenant, number, created_at) ones or the plain number ones), then a small sort."""
    plan = _plan(tenant, {"phone": CUSTOMER}, older=False, ordered=False)
    assert "BitmapOr" in plan and "Seq Scan" not in plan, plan
    assert re.search(r"Index Scan on \S*from_number", plan) or "message_tenant_from" in plan, plan
    assert re.search(r"Index Scan on \S*to_number", plan) or "message_tenant_to" in plan, plan


# --- the WSGI lane -----------------------------------------------------------------------------------


def _wsgi_get(path: str) -> tuple[str, dict]:
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO=path, REQUEST_METHOD="GET", HTTP_HOST="testserver", SERVER_NAME="testserver")
    answer: list = []
    b"".join(application(environ, lambda status, headers: answer.append((status, dict(headers)))))
    return answer[0]


def test_webhooks_are_served_without_session_auth_or_csrf_middleware(settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.SECURE_SSL_REDIRECT = False
    status, headers = _wsgi_get("/webhooks/twilio/messaging/status/")
    assert status.startswith("405")  # the gateway still answers (method first)
    assert headers.get("X-Content-Type-Options") == "nosniff"  # SecurityMiddleware stays
    assert "Vary" not in headers and "X-Frame-Options" not in headers  # no session, no clickjacking layer
    status, headers = _wsgi_get("/login/")
    assert "X-Frame-Options" in headers  # every other URL keeps the full chain
