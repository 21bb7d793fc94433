"""Real status callbacks through the signed webhook on PostgreSQL, in every order and with
duplicates, sequential and concurrent: the stored status, error code and timeline always end
where `status_should_advance` folded over the arrival order says.

These pin the status path's behaviour (whatever statements it uses) to the pure rule in
`messaging.statuses`, which has its own unit tests."""

from __future__ import annotations

import itertools
import threading
from functools import reduce
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from messaging import statuses
from messaging.models import Message, MessageEvent
from tests.conftest import random_sid, sign
from tests.tenants.factories import TenantFactory

STATUS = "/webhooks/twilio/messaging/status/"
CUSTOMER = "+14155550100"
OUR_NUMBER = "+14155550199"
#: Error codes carried by the failing statuses (not 21610: that one takes the opt-out path).
ERRORS = {"undelivered": "30003", "failed": "30008"}

pytestmark = [pytest.mark.services]


def expected_status(start: str, arrivals) -> str:
    return reduce(
        lambda current, new: new if statuses.status_should_advance(current, new) else current, arrivals, start
    )


def callback(tenant, sid: str, status: str) -> tuple[bytes, dict]:
    params = {
        "AccountSid": tenant.account_sid,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "From": OUR_NUMBER,
        "To": CUSTOMER,
        "ApiVersion": "2010-04-01",
    }
    if status in ERRORS:
        params["ErrorCode"] = ERRORS[status]
    signature = sign(settings.PUBLIC_BASE_URL + STATUS, params, tenant.auth_token.reveal())
    return urlencode(params).encode(), {"HTTP_X_TWILIO_SIGNATURE": signature}


def deliver(client: Client, tenant, sid: str, status: str) -> int:
    body, headers = callback(tenant, sid, status)
    return client.post(STATUS, data=body, content_type="application/x-www-form-urlencoded", **headers).status_code


def sent_message(tenant, status: str = "accepted") -> Message:
    return Message.objects.create(
        tenant=tenant,
        direction="outbound",
        sid=random_sid("SM"),
        status=status,
        from_number=OUR_NUMBER,
        to_number=CUSTOMER,
        body="Your order is ready.",
        num_segments=1,
    )


def assert_final_state(message: Message, start: str, arrivals) -> None:
    stored = Message.all_tenants.get(pk=message.pk)
    want = expected_status(start, arrivals)
    assert stored.status == want, (start, arrivals)
    # The error code is stored by the callback that moved the status, and only by it.
    assert stored.error_code == (int(ERRORS[want]) if want in ERRORS and want != start else None), arrivals
    timeline = MessageEvent.objects.for_tenant(message.tenant).filter(message=message)
    assert sorted(timeline.values_list("status", flat=True)) == sorted(set(arrivals)), arrivals
    if want != start:
        assert stored.status_updated_at == timeline.get(status=want).occurred_at


#: Sets whose outcome does not depend on order (at most one final status, `read` after it).
ORDER_FREE = [
    ("queued", "sending", "sent", "delivered", "read"),
    ("accepted", "queued", "sent", "undelivered"),
    ("sending", "sent", "partially_delivered", "failed"),
]
#: Sets with competing final statuses: the first final status to arrive wins.
FIRST_FINAL_WINS = [
    ("sent", "delivered", "undelivered", "read"),
    ("queued", "failed", "delivered", "canceled"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("arrivals", ORDER_FREE + FIRST_FINAL_WINS, ids="-".join)
def test_every_order_of_real_callbacks(postgresql, client, arrivals):
    tenant = TenantFactory(slug="perm")
    outcomes = set()
    for order in itertools.permutations(arrivals):
        message = sent_message(tenant)
        for status in order:
            assert deliver(client, tenant, message.sid, status) == 204
        assert_final_state(message, "accepted", order)
        outcomes.add(Message.all_tenants.get(pk=message.pk).status)
    if arrivals in ORDER_FREE:
        assert len(outcomes) == 1, outcomes


@pytest.mark.django_db
@pytest.mark.parametrize("arrivals", ORDER_FREE[:2] + FIRST_FINAL_WINS[:1], ids="-".join)
def test_duplicates_anywhere_change_nothing(postgresql, client, arrivals):
    """Each status repeated at some later point (Twilio retries): the same end as without."""
    tenant = TenantFactory(slug="perm")
    for order in itertools.islice(itertools.permutations(arrivals), 0, None, 3):
        for repeat_at in range(len(order)):
            with_repeat = [*order[: repeat_at + 1], order[repeat_at], *order[repeat_at + 1 :], order[0]]
            message = sent_message(tenant)
            for status in with_repeat:
                assert deliver(client, tenant, message.sid, status) == 204
            assert_final_state(message, "accepted", order)


@pytest.mark.parametrize("start", ["pending", "sent", "delivered", "failed", "blocked", "received"])
@pytest.mark.django_db
def test_stored_status_decides_with_the_same_rule(postgresql, client, start):
    tenant = TenantFactory(slug="perm")
    for status in ("queued", "sent", "delivered", "undelivered", "read", "received"):
        message = sent_message(tenant, status=start)
        assert deliver(client, tenant, message.sid, status) == 204
        stored = Message.all_tenants.get(pk=message.pk)
        assert stored.status == expected_status(start, [status]), (start, status)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("arrivals", [*ORDER_FREE, ("sent", "delivered", "delivered", "sent", "read", "read")])
def test_concurrent_callbacks_reach_the_order_free_end(postgresql, arrivals):
    """All callbacks of one message at once, each on its own connection, several rounds."""
    tenant = TenantFactory(slug="perm-race")
    for _ in range(3):
        message = sent_message(tenant)
        barrier = threading.Barrier(len(arrivals))
        codes, errors = [], []

        def post(status, message=message, barrier=barrier, codes=codes, errors=errors):
            try:
                barrier.wait()
                codes.append(deliver(Client(), tenant, message.sid, status))
            except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=post, args=(s,)) for s in arrivals]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and codes == [204] * len(arrivals)
        assert_final_state(message, "accepted", arrivals)
