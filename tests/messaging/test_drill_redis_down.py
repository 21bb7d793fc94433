"""Drill, full stack: Redis (the broker AND the shared cache) unreachable.

The deployment shape of tests/stack.py (the sandbox, gunicorn with DEBUG=False, a prefork Celery
worker, a fresh database), with every process reaching Redis through a `TcpProxy` that the drill
cuts, so the machine's Redis is never stopped. While Redis is gone:

- customers text in (the sandbox posts signed inbound webhooks, one of them a STOP): each is
  answered 2xx and stored, the STOP applied;
- the admin (signed in before the cut) sends through the form: each message is stored pending
  and the page says it waits for the worker;
- the admin browses the dashboard, the message log, a message, the opt-outs and the numbers:
  every page answers (the cache is an optimisation, never a dependency of a page);
- `/healthz` says the broker is down (503), as it should.

Redis comes back; beat's release job (sent as beat would) queues what waited, the worker sends
each message exactly once (the sandbox counts), and Twilio's callbacks reach the portal.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter

import pytest
import requests

from tests.conftest import redis_reachable
from tests.proxies import TcpProxy
from tests.stack import Browser, Stack, sandbox_get, stack_start

pytestmark = pytest.mark.slow

SLUG = "redisdrill"
OURS = "+14155550166"
RECIPIENTS = [f"+1415555{n:04d}" for n in range(4101, 4105)]
INBOUND = [("+14155550251", "Is my order ready?"), ("+14155550252", "STOP"), ("+14155550253", "Thanks!")]
#: (broker, cache) Redis databases; another drill beside this one needs others.
REDIS_DBS = tuple(int(n) for n in os.environ.get("DRILL_REDIS_DOWN_DBS", "1,0").split(","))

SEED = """
import io, json, sys, django
django.setup()
import requests
from django.conf import settings
from django.core.management import call_command
from tenants.models import Tenant
from tenants.numbers import numbers_sync_all, webhook_urls
slug, number = sys.argv[1], sys.argv[2]
quiet = io.StringIO()
call_command("create_tenant", slug, "--name", "Redis drill", "--create-subaccount", stdout=quiet)
call_command("create_portal_user", "drill-admin", "--password", "env:PORTAL_PASSWORD", "--tenant", slug,
             "--role", "admin", stdout=quiet)
tenant = Tenant.objects.get(slug=slug)
hooks = webhook_urls()
requests.post(f"{settings.TWILIO_API_BASE_URL}/sandbox/accounts/{tenant.account_sid}/numbers",
              data={"PhoneNumber": number, "SmsUrl": hooks["sms_url"], "StatusCallback": hooks["status_callback"]},
              timeout=10).raise_for_status()
numbers_sync_all()
print(json.dumps({"account_sid": tenant.account_sid}))
"""

STATE = """
import json, sys, django
django.setup()
from messaging.ledgers.reachability import number_is_opted_out
from messaging.models import Message
from tenants.models import Tenant
tenant = Tenant.objects.get(slug=sys.argv[1])
messages = Message.objects.for_tenant(tenant)
print(json.dumps({
    "inbound": sorted(messages.filter(direction="inbound").values_list("from_number", flat=True)),
    "outbound": {m.to_number: [m.status, m.sid or ""] for m in messages.filter(direction="outbound")},
    "opted_out": number_is_opted_out(tenant=tenant, phone=sys.argv[2]),
}))
"""


@pytest.fixture
def drill(tmp_path, monkeypatch):
    """A stack whose every process reaches Redis (broker and cache) through a running proxy."""
    if not redis_reachable("redis://127.0.0.1:6379/0"):
        pytest.skip("the Redis drill needs Redis on 127.0.0.1:6379")
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")  # the stack then uses Redis
    stack = Stack(tmp_path, name="d2redis", redis_dbs=REDIS_DBS)
    proxy = TcpProxy(("127.0.0.1", 6379))
    proxy.start()
    broker_db, cache_db = REDIS_DBS
    for name in ("CELERY_FILESYSTEM_BROKER_DIR", "CACHE_URL"):
        stack.env.pop(name, None)
    stack.env.update(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{proxy.port}/{broker_db}",
        REDIS_URL=f"redis://127.0.0.1:{proxy.port}/{cache_db}",
    )
    try:
        stack_start(stack)
        yield stack, proxy
    finally:
        if not proxy.running:
            proxy.start()  # a drill that failed mid-cut: the processes stop cleanly through it
        stack.stop()
        proxy.stop()


def _csrf(page: requests.Response) -> str:
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, f"no CSRF token on {page.url}"
    return token.group(1)


def test_redis_down_loses_nothing_and_no_page_fails(drill):
    stack, proxy = drill
    seeded = json.loads(stack.python("-c", SEED, SLUG, OURS))
    admin = Browser(stack.web, "drill-admin")
    answers: Counter = Counter()

    def hit(method: str, path: str, data: dict | None = None) -> requests.Response:
        response = admin._request(method, stack.web + path, data)
        answers[response.status_code] += 1
        return response

    send_form = admin.get(f"/t/{SLUG}/messages/send/")
    proxy.stop()
    cut_at = time.monotonic()

    inbound_codes = [
        requests.post(
            f"{stack.sandbox}/sandbox/inbound", data={"From": sender, "To": OURS, "Body": body}, timeout=30
        ).json()["status_code"]
        for sender, body in INBOUND
    ]
    sent_pages = []
    for to in RECIPIENTS:
        data = {"to": to, "purpose": "transactional", "sender": OURS, "body": f"Order {to[-4:]} is ready."}
        sent_pages.append(hit("POST", f"/t/{SLUG}/messages/send/", {"csrfmiddlewaretoken": _csrf(send_form), **data}))
    pages = [f"/t/{SLUG}/", f"/t/{SLUG}/messages/", f"/t/{SLUG}/opt-outs/", f"/t/{SLUG}/numbers/"]
    for path in pages:
        hit("GET", path)
    message_url = re.search(rf"/t/{SLUG}/messages/\d+/", sent_pages[0].url or "")
    if message_url:
        hit("GET", message_url.group(0))
    health = requests.get(f"{stack.web}/healthz", timeout=10)
    down = json.loads(stack.python("-c", STATE, SLUG, INBOUND[1][0]))
    outage_seconds = round(time.monotonic() - cut_at, 1)

    proxy.start()
    stack.send_task("messaging.tasks.deferred_messages_release_task")  # beat's next run

    def delivered():
        at_twilio = sandbox_get(stack, "messages", account_sid=seeded["account_sid"])
        sent = Counter(m["to"] for m in at_twilio if m["direction"].startswith("outbound"))
        state = json.loads(stack.python("-c", STATE, SLUG, INBOUND[1][0]))
        done = all(sent[to] for to in RECIPIENTS) and all(
            state["outbound"][to][0] in ("delivered", "undelivered", "failed") for to in RECIPIENTS
        )
        return done and (sent, state)

    sent, after = stack.wait_until("the waiting messages to be sent and delivered", delivered, timeout=120)
    time.sleep(3)  # a duplicate send would show up here
    at_twilio = sandbox_get(stack, "messages", account_sid=seeded["account_sid"])
    sent = Counter(m["to"] for m in at_twilio if m["direction"].startswith("outbound"))
    report = {
        "requests": sum(answers.values()) + len(inbound_codes),
        "5xx": sum(n for code, n in answers.items() if code >= 500) + sum(c >= 500 for c in inbound_codes),
        "lost": len(INBOUND) - len(after["inbound"]) + sum(1 for to in RECIPIENTS if not sent[to]),
        "duplicated": sum(n - 1 for n in sent.values() if n > 1),
        "outage_seconds": outage_seconds,
    }
    print("redis-down drill:", report)

    assert inbound_codes == [200] * len(INBOUND), inbound_codes
    assert sorted(down["inbound"]) == sorted(s for s, _ in INBOUND) and down["opted_out"] is True, down
    for page in sent_pages:
        assert page.status_code == 200 and "it will be sent when the worker is reachable" in page.text, page.text[:2000]
    assert {to: down["outbound"][to][0] for to in RECIPIENTS} == {to: "pending" for to in RECIPIENTS}
    assert health.status_code == 503 and health.json()["checks"]["broker"]["ok"] is False, health.text
    assert report["5xx"] == 0, (answers, stack.logs())
    assert (report["lost"], report["duplicated"]) == (0, 0), report
    assert all(after["outbound"][to][1] for to in RECIPIENTS)
