"""End to end, deployed as in production: every part is its own process (tests/stack.py: the
local Twilio sandbox, strict about unknown accounts; the portal under gunicorn with DEBUG=False;
a Celery worker; a fresh database of its own).

The test is the operator and the tenant admin, over HTTP only: the operator creates a tenant
(the portal creates its subaccount at the sandbox), numbers appear at "Twilio" and reach the
portal by the worker's sync task (the one beat runs), the drift they show is fixed with the
page's own buttons, the admin sends messages through the send form, the worker delivers them,
the sandbox answers with status callbacks signed as Twilio signs them, customers text in, and
the dashboard's counts must equal what the sandbox holds. Nothing here reaches into the
portal's database or Python objects: what is checked is what a user or Twilio would see.

The portal runs without TLS here, so the session and CSRF cookies (Secure under DEBUG=False)
are sent back by the test's client as a TLS-terminating proxy would let them through.
"""

from __future__ import annotations

import html
import re
from collections import Counter

import pytest
import requests

from tests.stack import Browser, Stack, running_stack
from tests.stack import sandbox_get as _sandbox

pytestmark = pytest.mark.slow
SLUG = "e2e-clinic"
# What the tenant's customers are sent, and what the sandbox makes of each (sandbox/messaging.py).
RECIPIENTS = {
    "+14155550140": "delivered",
    "+14155550141": "delivered",
    "+14155550142": "delivered",
    "+15005550010": "undelivered",  # 30003 unreachable handset
    "+15005550012": "failed",  # 30008 unknown error
}
INBOUND = [("+14155550150", "Is my appointment on Tuesday still on?"), ("+14155550151", "STOP")]
FINAL = {"delivered", "undelivered", "failed"}
SETTLE_SECONDS = 90


@pytest.fixture
def stack(tmp_path):
    with running_stack(tmp_path) as stack:
        yield stack


def _stat(page: str, name: str) -> str:
    found = re.search(rf'data-stat="{name}">([^<]*)<', page)
    assert found, f"no {name} on the dashboard"
    return found.group(1).strip()


def _table(page: str, attribute: str) -> dict[str, int]:
    """{key: count} from rows like <tr data-status="delivered"><td>..</td><td class="text-end">3</td>."""
    rows = re.findall(rf'<tr {attribute}="([^"]+)">.*?<td class="text-end">(\d+)</td>', page, flags=re.S)
    return {key: int(count) for key, count in rows}


def dashboard_figures(browser: Browser) -> dict:
    page = browser.get(f"/t/{SLUG}/?range=24h").text
    return {
        "outbound": int(_stat(page, "outbound")),
        "inbound": int(_stat(page, "inbound")),
        "by_status": _table(page, "data-status"),
        "errors": _table(page, "data-error-code"),
        "delivery_rate": html.unescape(_stat(page, "delivery-rate")),
    }


def sandbox_figures(stack: Stack, account_sid: str) -> dict:
    """The same figures, from what the sandbox (Twilio) holds for the subaccount."""
    messages = _sandbox(stack, "messages", account_sid=account_sid)
    outbound = [m for m in messages if m["direction"].startswith("outbound")]
    by_status = Counter(m["status"] for m in outbound)
    finished = sum(by_status[s] for s in FINAL)
    return {
        "outbound": len(outbound),
        "inbound": sum(1 for m in messages if m["direction"] == "inbound"),
        "by_status": dict(by_status),
        "errors": dict(Counter(str(m["error_code"]) for m in outbound if m["error_code"])),
        "delivery_rate": f"{100 * by_status['delivered'] / finished:.1f}%" if finished else "—",
    }


def test_operator_and_admin_run_a_tenant_end_to_end(stack):
    operator = Browser(stack.web, "operator", totp_secret=stack.totp_secrets["operator"])

    # 1. The operator creates the tenant; the portal creates its subaccount at "Twilio".
    page = operator.get("/operator/tenants/new/")
    created = operator.post_form(
        page, "/operator/tenants/new/", {"name": "E2E Clinic", "slug": SLUG, "timezone": "America/Los_Angeles"}
    )
    assert created.url.endswith(f"/operator/tenants/{SLUG}/"), created.text[:2000]
    [account] = [a for a in _sandbox(stack, "accounts") if a["friendly_name"] == "E2E Clinic"]
    account_sid = account["sid"]
    assert account["status"] == "active" and account_sid in created.text
    stack.manage(
        "create_portal_user", "clinic-admin", "--password", "env:PORTAL_PASSWORD", "--tenant", SLUG, "--role", "admin"
    )
    admin = Browser(stack.web, "clinic-admin")

    # 2. Two numbers exist at Twilio, bought elsewhere: one with no webhooks, one pointing away.
    ours = "+14155550177"
    for number, sms_url in ((ours, ""), ("+14155550178", "https://old-vendor.example.com/sms")):
        seeded = requests.post(
            f"{stack.sandbox}/sandbox/accounts/{account_sid}/numbers",
            data={"PhoneNumber": number, "SmsUrl": sms_url},
            timeout=10,
        )
        assert seeded.status_code == 201, seeded.text

    # 3. The worker's sync task (the one beat runs) brings them in; both show drift.
    stack.send_task("tenants.tasks.numbers_sync_all")
    numbers_page = stack.wait_until(
        "the numbers sync",
        lambda: (p := admin.get(f"/t/{SLUG}/numbers/").text).count('badge text-bg-danger">DRIFT') == 2 and p,
    )
    assert "2 numbers with webhook drift" in numbers_page
    for action in re.findall(r'action="(/t/[^"]+/numbers/PN[0-9a-f]{32}/fix/)"', numbers_page):
        numbers_page = admin.post_form(admin.get(f"/t/{SLUG}/numbers/"), action, {}).text
    assert "webhook drift" not in numbers_page and numbers_page.count('text-bg-success">OK') == 2
    at_twilio = requests.get(
        f"{stack.sandbox}/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers.json",
        auth=(stack.parent_sid, stack.parent_token),
        timeout=10,
    ).json()["incoming_phone_numbers"]
    assert {n["sms_url"] for n in at_twilio} == {f"{stack.web}/webhooks/twilio/messaging/inbound/"}

    # 4. The admin sends through the form; the worker delivers; Twilio calls back, signed.
    for to in RECIPIENTS:
        form = admin.get(f"/t/{SLUG}/messages/send/")
        sent = admin.post_form(
            form,
            f"/t/{SLUG}/messages/send/",
            {
                "to": to,
                "purpose": "transactional",
                "sender": ours,
                "body": f"Your appointment is confirmed ({to[-4:]}).",
            },
        )
        assert re.search(rf"/t/{SLUG}/messages/\d+/$", sent.url), sent.text[:2000]

    # 5. Customers text in (signed inbound webhooks to the number's now-fixed SmsUrl).
    for sender, body in INBOUND:
        inbound = requests.post(
            f"{stack.sandbox}/sandbox/inbound", data={"From": sender, "To": ours, "Body": body}, timeout=30
        ).json()
        assert inbound["status_code"] == 200, inbound

    # 6. Once Twilio has settled every message, the dashboard says exactly what Twilio holds.
    def settled():
        at_twilio = _sandbox(stack, "messages", account_sid=account_sid)
        outbound = [m for m in at_twilio if m["direction"].startswith("outbound")]
        return len(outbound) == len(RECIPIENTS) and all(m["status"] in FINAL for m in outbound)

    stack.wait_until("Twilio to settle every message", settled, timeout=SETTLE_SECONDS)
    expected = sandbox_figures(stack, account_sid)
    assert expected["by_status"] == dict(Counter(RECIPIENTS.values()))
    assert expected["errors"] == {"30003": 1, "30008": 1} and expected["inbound"] == len(INBOUND)
    stack.wait_until("the dashboard to match Twilio", lambda: dashboard_figures(admin) == expected, timeout=30)
    assert dashboard_figures(admin) == {
        "outbound": 5,
        "inbound": 2,
        "by_status": {"delivered": 3, "undelivered": 1, "failed": 1},
        "errors": {"30003": 1, "30008": 1},
        "delivery_rate": "60.0%",
    }

    # Every callback Twilio sent the portal was accepted (a bad signature would be a 403).
    callbacks = [w for w in _sandbox(stack, "webhooks") if w["url"].startswith(stack.web)]
    statuses = Counter(w["params"].get("MessageStatus") for w in callbacks if w["kind"] != "inbound-sms")
    assert statuses["delivered"] == 3 and statuses["undelivered"] == 1 and statuses["failed"] == 1, statuses
    refused = [w for w in callbacks if not (w["status_code"] and 200 <= w["status_code"] < 300)]
    assert not refused, refused

    # The STOP was recorded as an opt-out; the message log has all seven.
    opt_outs = admin.get(f"/t/{SLUG}/opt-outs/").text
    row = re.search(r"<tr>(?:(?!</tr>).)*\+14155550151(?:(?!</tr>).)*</tr>", opt_outs, flags=re.S)
    assert row and "Opted out" in row.group(0) and ">STOP</span>" in row.group(0), opt_outs[:3000]
    log = admin.get(f"/t/{SLUG}/messages/").text
    assert len(set(re.findall(rf"/t/{SLUG}/messages/(\d+)/", log))) == len(RECIPIENTS) + len(INBOUND)

    # 7. Reachability, probed by the worker, reaches /healthz through the shared cache.
    stack.send_task("tenants.tasks.twilio_reachability_check")
    health = stack.wait_until(
        "reachability in /healthz",
        lambda: (body := requests.get(f"{stack.web}/healthz", timeout=5).json())["twilio"].get(SLUG) and body,
    )
    assert health["status"] == "ok" and health["twilio"][SLUG]["ok"] is True
    assert health["twilio_summary"]["status"] == "ok" and health["debug"] is False
