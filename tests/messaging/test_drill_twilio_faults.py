"""Drill: Twilio answering 500, 429 and timeouts, then unreachable; 0 lost, 0 duplicated.

Runs the scripted drill (`manage.py drill_twilio_faults`) against a deployed stack
(tests/stack.py: gunicorn with DEBUG=False, a Celery worker, the sandbox, a fresh database).
The drill does beat's part itself (the release task every few seconds). Compressed for CI: the
portal's Twilio read timeout is 2 s (the sandbox stalls 5 s), and the "10 minutes unreachable"
is `DRILL_OUTAGE_SECONDS` (default 45 s); set it to 600 for the full drill (and
`DRILL_REDIS_DBS` to other Redis databases when two runs share the machine).
"""

from __future__ import annotations

import json
import os
import re

import pytest

from messaging.delivery.retries import AMBIGUOUS_MIN_DELAY
from tests.stack import Stack, stack_start

pytestmark = pytest.mark.slow

MESSAGES = 50
OUTAGE_SECONDS = float(os.environ.get("DRILL_OUTAGE_SECONDS", "45"))
#: (broker, cache) Redis databases: a second run beside this one needs others.
REDIS_DBS = tuple(int(n) for n in os.environ.get("DRILL_REDIS_DBS", "7,6").split(","))


def test_one_off_sends_survive_500s_429s_timeouts_and_an_outage(tmp_path):
    stack = Stack(tmp_path, name="d4twilio", redis_dbs=REDIS_DBS)
    stack.env["TWILIO_HTTP_TIMEOUT"] = "2"
    try:
        stack_start(stack)
        out = stack.manage(
            "drill_twilio_faults", "--sandbox-url", stack.sandbox, "--portal-url", stack.web,
            "--messages", str(MESSAGES), "--outage-seconds", str(OUTAGE_SECONDS),
            "--stall-seconds", "5", "--release-every", "5", "--settle-seconds", "600",
            timeout=OUTAGE_SECONDS + 1200,
        )  # fmt: skip
        report = json.loads(out[out.index("{") :])
        access_log = (tmp_path / "web.log").read_text(errors="replace")
    finally:
        stack.stop()
    print(json.dumps(report, indent=2))  # the drill's figures, for the record (-s)

    assert (report["messages"], report["at_twilio"]) == (MESSAGES, MESSAGES)
    assert report["lost"] == report["duplicated"] == report["failed"] == report["sid_mismatch"] == 0
    served = report["backoff"]["faults_served"]
    planned = report["faults_planned"]
    assert served["500"] == planned["500"] and served["429"] == planned["429"]
    assert served["stall"] == planned["timeout"]
    assert served["accept_then_stall"] == planned["timeout_after_accepting"]
    # Backoff as Twilio saw it: after a "maybe sent" failure the retry waits at least
    # AMBIGUOUS_MIN_DELAY (creation times are whole seconds, hence the 1 s slack).
    gaps = report["backoff"]["gap_seconds"]
    assert gaps["500"]["min"] >= AMBIGUOUS_MIN_DELAY - 1, gaps
    assert gaps["timeout"]["min"] >= 2 + AMBIGUOUS_MIN_DELAY - 1, gaps
    # The portal's own pages, and every request it served (webhooks too), never answered 5xx.
    assert report["portal_5xx"] == 0 and report["portal_requests"] > 0
    assert not re.findall(r'HTTP/1\.[01]" 5\d\d ', access_log)
