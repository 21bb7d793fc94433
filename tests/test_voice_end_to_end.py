"""Voice end to end, as a new user tries it: `manage.py demo` (tests/stack.py `Demo`), a caller
rings Acme's demo number from the sandbox's virtual phone, walks the demo call flow's menu to
voicemail, leaves a message and hangs up; then Acme's admin finds the call in the portal with the
path the caller took and the recording, which plays through the portal.

Everything goes over HTTP, as the caller (the sandbox's control API, what its phone page posts)
and the admin (the portal's pages) would: the sandbox fetches the number's voice URL and every
Gather/Record action signed as Twilio signs them, and sends the status and recording callbacks.
"""

from __future__ import annotations

import html
import re

import pytest
import requests

from tests.stack import Browser, Demo

pytestmark = pytest.mark.slow

DEMO_PASSWORD = "commsportal-demo"
CALLER = "+14155550199"
ACME_NUMBER = "+14155550101"  # the demo number with the demo call flow (sandbox/management/commands/demo.py)
VOICEMAIL_KEY = "2"


def said(call: dict) -> list[str]:
    return [entry["text"] for entry in call["transcript"] if entry.get("verb") == "Say"]


def phone(demo: Demo, path: str, **data) -> dict:
    """What the caller does on the sandbox's phone; the call as the phone now sees it."""
    response = requests.post(f"{demo.sandbox}/sandbox/calls/{path}", data=data, timeout=60)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_a_caller_walks_the_demo_menu_to_voicemail_and_the_admin_finds_it(tmp_path):
    demo = Demo(tmp_path)
    try:
        demo.wait_for("the portal", lambda: requests.get(f"{demo.web}/healthz", timeout=5).status_code == 200)
        admin = Browser(demo.web, "acme-admin", DEMO_PASSWORD)
        # The demo seeds its call flow once the numbers are synced; the demo prints how to call.
        demo.wait_for(
            "the demo call flow", lambda: "/sandbox/calls/incoming" in demo.output() and "menu" in demo.output()
        )
        demo.wait_for("the flow on the number", lambda: "Acme front desk" in admin.get("/t/acme/calls/flows/").text)

        # The caller rings the number: greeting and menu, then the phone waits for a key.
        call = phone(demo, "incoming", From=CALLER, To=ACME_NUMBER)
        sid = call["sid"]
        assert (call["status"], call["waiting_for"], call["errors"]) == ("in-progress", "digits", [])
        heard = said(call)
        assert heard[0].startswith("Thank you for calling Acme Health") and "press 2" in heard[-1].lower(), heard

        # 2: voicemail. The caller speaks for 4 seconds and hangs up.
        call = phone(demo, f"{sid}/digits", digits=VOICEMAIL_KEY)
        assert call["waiting_for"] == "recording", call
        phone(demo, f"{sid}/speak", seconds="4")
        call = phone(demo, f"{sid}/hangup")
        assert call["status"] == "completed" and call["errors"] == [], call
        [recording_sid] = call["recordings"]
        requests_made = [e for e in call["transcript"] if e.get("event") == "request"]
        assert [e["status"] for e in requests_made] == [200] * len(requests_made), requests_made

        # The admin finds the call, its path and its recording.
        call_page = demo.wait_for(
            "the call in the portal",
            lambda: (
                (m := re.search(r'href="(/t/acme/calls/\d+/)"', admin.get("/t/acme/calls/?direction=inbound").text))
                and sid in (page := admin.get(m.group(1)).text)
                and recording_sid in page
                and page
            ),
            timeout=60,
        )
        text = html.unescape(call_page)
        assert CALLER in text and ACME_NUMBER in text
        assert "Completed" in text and "Acme front desk" in text
        path = re.search(r"Menu path</div>(.*?)</ol>", call_page, flags=re.S)
        steps = re.sub(r"<[^>]+>", "", path.group(1)) if path else ""
        assert f"(pressed {VOICEMAIL_KEY})" in steps and "voicemail" in steps, call_page
        audio = re.search(r'<audio[^>]*src="([^"]+)"', call_page)
        assert audio, call_page
        played = admin.session.get(
            demo.web + html.unescape(audio.group(1)), headers={"Range": "bytes=0-99"}, timeout=30
        )
        assert played.status_code == 206 and played.headers["Content-Type"].startswith("audio/"), played.text[:500]
        assert len(played.content) == 100
    finally:
        returncode = demo.stop()
    assert returncode == 0, demo.output()[-4000:]
