"""The README's run command: `manage.py demo` on the embedded default, as a new user runs it.

It must come up with nothing else installed (SQLite, the filesystem broker, the local Twilio
sandbox, a worker with beat), show Twilio reachability and synced numbers from the start, play
the demo customers' texts, deliver a message sent from the portal, track its emails through the
sandbox's SendGrid, and stop on SIGTERM. Its
database, broker folder and cache go to a temporary folder instead of the checkout's var/.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest
import requests

from tests.stack import Browser, Demo

pytestmark = pytest.mark.slow

DEMO_PASSWORD = "commsportal-demo"


def test_demo_comes_up_delivers_and_stops(tmp_path):
    demo = Demo(tmp_path)
    base, wait_for = demo.web, demo.wait_for
    try:
        health = wait_for(
            "Twilio reachability in /healthz",
            lambda: (
                (body := requests.get(f"{base}/healthz", timeout=5).json())["twilio_summary"]["tenants"] == 2 and body
            ),
        )
        assert health["status"] == "ok" and health["twilio_summary"]["status"] == "ok", health
        assert {slug: r["ok"] for slug, r in health["twilio"].items()} == {"acme": True, "globex": True}

        # Staff pass the second factor with the authenticator-app key the demo prints.
        printed = dict(re.findall(r"^\s+(support|operator)\s+key ([A-Z2-7]+)\s", demo.output(), re.M))
        assert set(printed) == {"support", "operator"}, demo.output()[-3000:]
        Browser(base, "operator", DEMO_PASSWORD, totp_secret=printed["operator"]).get("/operator/")
        Browser(base, "support", DEMO_PASSWORD, totp_secret=printed["support"]).get("/support/")

        admin = Browser(base, "acme-admin", DEMO_PASSWORD)
        # The numbers are synced at start (a task of its own: it may run after the probe);
        # acme's point at the portal, globex's shows drift.
        numbers = wait_for("the numbers sync", lambda: "Last synced" in (p := admin.get("/t/acme/numbers/").text) and p)
        assert numbers.count('text-bg-success">OK') == 2 and "DRIFT</span>" not in numbers
        globex = Browser(base, "globex-admin", DEMO_PASSWORD).get("/t/globex/numbers/").text
        assert "1 number with webhook drift" in globex
        # The demo customers' texts came in through the signed webhook path.
        wait_for("the demo's inbound texts", lambda: "HELP" in admin.get("/t/acme/messages/?direction=inbound").text)

        form = admin.get("/t/acme/messages/send/")
        sent = admin.post_form(
            form,
            "/t/acme/messages/send/",
            {"to": "+14155550160", "purpose": "transactional", "sender": "+14155550101", "body": "Hello from the demo"},
        )
        message_id = re.search(r"/t/acme/messages/(\d+)/$", sent.url).group(1)
        status = wait_for(
            "the message to be delivered",
            lambda: (s := admin.get(f"/t/acme/messages/{message_id}/status/").json())["final"] and s,
            timeout=60,
        )
        assert status["status"] == "delivered", status
        # Its emails went through the sandbox's SendGrid and came back as signed events.
        wait_for(
            "the demo's emails to be tracked",
            lambda: 'data-status="delivered"' in (page := admin.get("/t/acme/email/").text) and "Bounced" in page,
            timeout=60,
        )
        assert "bounce@example.com" in admin.get("/t/acme/email/suppressions/").text
    finally:
        returncode = demo.stop()
    assert returncode == 0, demo.output()[-4000:]
    # Its children (web server, worker and the worker's embedded beat) go with it.
    deadline = time.monotonic() + 20
    group = str(demo.process.pid)
    while leftovers := subprocess.run(["pgrep", "-g", group], capture_output=True, text=True).stdout.split():
        if time.monotonic() > deadline:
            os.killpg(demo.process.pid, signal.SIGKILL)
            raise AssertionError(f"still running 20 s after the demo stopped: {leftovers}")
        time.sleep(0.2)
