"""DRILL: the Celery worker is SIGKILLed at random points of a 1,000-recipient bulk send.

A real stack (tests/stack.py: gunicorn, the Twilio sandbox, a prefork worker on Redis DB 1 with
the cache on DB 0) sends one bulk send at a high pacing rate. The worker's whole process group
is killed three times at random progress points and started again. Afterwards the sandbox
(Twilio) must hold exactly one message per recipient, and each time the worker came back the
next send must come within RESUME_SECONDS of its start: a dead dispatcher's lock lapses in
seconds and the new worker's start-up kick waits it out.

The in-flight message of a killed worker keeps its send lease; the worker here runs with a
short lease (and a shorter Twilio timeout, as production keeps the lease above it) so the drill
need not wait out production's two minutes. Beat is not part of the stack: the drill sends the
periodic kick itself, every 15 s as beat would.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from celery import Celery

from tests.conftest import redis_required
from tests.stack import BIN, Stack, sandbox_get, stack_start

pytestmark = pytest.mark.slow

RECIPIENTS = 1_000
KILLS = 3
RATE = 60.0  # messages per second: the sandbox accepts as fast as the worker can send
RESUME_SECONDS = 10.0
KICK_EVERY = 15.0  # the beat schedule's interval for messaging.bulk_tasks.bulk_dispatch_kick
DRILL_SECONDS = 300
WORKER_ENV = {"MESSAGING_SEND_LEASE_SECONDS": "20", "TWILIO_HTTP_TIMEOUT": "5"}
WORKER_ARGV = [
    str(BIN / "celery"), "-A", "commsportal", "worker", "--pool=prefork", "--concurrency=2",
    "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "info",
]  # fmt: skip

SETUP = """
import sys, django
django.setup()
from datetime import time
from tenants.audit import SYSTEM
from tenants.models import Tenant
from messaging.compliance.policy import sending_policy_get
from messaging.delivery.bulk.lifecycle import bulk_launch
from messaging.delivery.bulk.upload import bulk_csv_read, bulk_draft_create
from messaging.models import MessageTemplate
from sandbox.state import MAGIC_FROM

account_sid, auth_token, rate, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
tenant = Tenant.objects.create(slug="drill", name="Drill", account_sid=account_sid, auth_token=auth_token)
policy = sending_policy_get(tenant=tenant)
policy.quiet_start, policy.quiet_end = time(0, 0), time(23, 59, 59, 999999)
policy.messages_per_second = rate
policy.save()
template = MessageTemplate.objects.create(tenant=tenant, name="Drill", purpose="transactional", body="Hi {{name}}")
rows = "phone,name\\n" + "".join(f"+14152{i:06d},R{i}\\n" for i in range(count))
upload = bulk_csv_read(content=rows.encode(), body=template.body)
assert not upload.file_errors, upload.file_errors
bulk = bulk_draft_create(tenant=tenant, name="Drill", template=template, purpose="transactional",
                         sender=MAGIC_FROM, upload=upload, audit=SYSTEM)
bulk = bulk_launch(bulk=bulk, audit=SYSTEM)
print(bulk.pk, bulk.status)
"""

PROGRESS = """
import sys, django
django.setup()
from messaging.models import BulkSend
print(BulkSend.all_tenants.get(pk=int(sys.argv[1])).status)
"""


@pytest.fixture
def redis_stack(tmp_path, monkeypatch):
    broker = "redis://127.0.0.1:6379/1"
    redis_required(broker)
    monkeypatch.setenv("CELERY_BROKER_URL", broker)
    monkeypatch.delenv("DATABASE_URL", raising=False)  # a file SQLite database of its own
    stack = Stack(tmp_path, name="drillkill", redis_dbs=(1, 0))
    try:
        stack.env.update(WORKER_ENV)  # every process: the web's status callbacks share settings
        stack_start(stack)
        yield stack
    finally:
        stack.stop()


def sent_per_recipient(stack: Stack, account_sid: str) -> Counter:
    messages = sandbox_get(stack, "messages", account_sid=account_sid)
    return Counter(m["to"] for m in messages if m["direction"].startswith("outbound"))


def worker_kill(stack: Stack) -> None:
    """SIGKILL the worker's process group (parent and pool children at once) and forget it."""
    for entry in [e for e in stack.processes if e[0].startswith("worker")]:
        os.killpg(entry[1].pid, signal.SIGKILL)
        entry[1].wait(timeout=10)
        stack.processes.remove(entry)


def test_drill_worker_killed_during_a_bulk_send_sends_each_message_once(redis_stack: Stack):
    stack, started = redis_stack, time.monotonic()
    account_sid = "AC" + os.urandom(16).hex()
    auth_token = os.urandom(16).hex()
    requests.post(f"{stack.sandbox}/sandbox/accounts/{account_sid}", data={"AuthToken": auth_token}, timeout=10)
    bulk_id = int(stack.python("-c", SETUP, account_sid, auth_token, str(RATE), str(RECIPIENTS)).split()[0])
    beat = Celery("drill-beat", broker=stack.redis_url, set_as_current=False)

    kill_at = sorted(random.sample(range(100, RECIPIENTS - 100), KILLS))
    gaps: list[float] = []
    last_kick = time.monotonic()
    for target in kill_at:
        stack.wait_until(f"{target} sends", lambda t=target: sum(sent_per_recipient(stack, account_sid).values()) >= t)
        worker_kill(stack)
        time.sleep(random.uniform(0.5, 2.0))  # a supervisor's restart delay
        before = sum(sent_per_recipient(stack, account_sid).values())
        restarted = time.monotonic()
        stack.start(f"worker-{len(gaps) + 1}", WORKER_ARGV)
        stack.wait_until(
            "the next send after the restart",
            lambda b=before: sum(sent_per_recipient(stack, account_sid).values()) > b,
            timeout=60,
        )
        gaps.append(time.monotonic() - restarted)

    deadline = time.monotonic() + DRILL_SECONDS
    while time.monotonic() < deadline:
        stack.check_alive()
        if time.monotonic() - last_kick >= KICK_EVERY:
            beat.send_task("messaging.bulk_tasks.bulk_dispatch_kick")
            last_kick = time.monotonic()
        counts = sent_per_recipient(stack, account_sid)
        if len(counts) == RECIPIENTS and stack.python("-c", PROGRESS, str(bulk_id)).strip() == "completed":
            break
        time.sleep(1)
    beat.close()
    counts = sent_per_recipient(stack, account_sid)
    figures = {
        "messages": RECIPIENTS,
        "sent": sum(counts.values()),
        "lost": RECIPIENTS - len(counts),
        "duplicated": sum(1 for n in counts.values() if n > 1),
        "kills_at": kill_at,
        "resume_gaps_s": [round(g, 1) for g in gaps],
        "runtime_s": round(time.monotonic() - started),
    }
    print("DRILL worker-kill", figures, file=sys.stderr)
    Path(stack.tmp / "figures.txt").write_text(repr(figures))
    assert figures["lost"] == 0 and figures["duplicated"] == 0, (figures, stack.logs())
    assert max(gaps) < RESUME_SECONDS, (figures, stack.logs())
