"""`drill_twilio_faults`: one-off sends survive a failing Twilio with 0 lost and 0 duplicated.

The drill runs against a deployed portal (its database, broker and Celery worker, as configured
by the environment) whose `TWILIO_API_BASE_URL` is the local sandbox, and drives the sandbox
over its HTTP control API only (`--sandbox-url`; never the real Twilio: loopback addresses only).

1. A tenant of its own (`--slug`): a subaccount created at the sandbox, a pacing rate high
   enough that pacing is not what is measured.
2. Faults, served in this order to the Messages create requests: 500s, then 429s, then read
   timeouts (the sandbox holds the request unanswered longer than the portal's
   `TWILIO_HTTP_TIMEOUT`); for a few recipients the sandbox creates the message first and then
   stalls ("maybe sent": only reconciliation keeps the retry from sending twice).
3. Most messages are queued while those faults are served; once they are used up and those
   messages sent, Twilio becomes unreachable for `--outage-seconds` (connections refused) and
   the rest are queued during the outage.
4. Meanwhile it does beat's part: the periodic release task every `--release-every` seconds,
   enqueued to the worker; and, with `--portal-url`, it loads the portal's own pages
   (`/healthz`, the login page) and counts any 5xx.
5. When nothing is pending any more, it compares with what the sandbox holds: each message's
   body must be there exactly once with the SID the portal saved. Lost (0 there, not failed by
   its purpose's deadline), duplicated (more than once), failed, and the gaps between a fault
   and the next attempt at the same recipient (the backoff) are reported as JSON.

Exits with an error when anything was lost, duplicated or failed, or it did not settle.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter, defaultdict
from email.utils import parsedate_to_datetime

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from messaging import statuses
from messaging.compliance.policy import sending_policy_update
from messaging.delivery.queueing import message_send
from messaging.models import Message, Purpose
from messaging.tasks.delivery import deferred_messages_release_task
from tenants.audit import SYSTEM
from tenants.lifecycle import subaccount_find_or_create
from tenants.models import Tenant
from tenants.services import tenant_upsert

#: Twilio's test From number: the sandbox accepts it from any account, so no number is needed.
MAGIC_FROM = "+15005550006"
MESSAGES_PATH = "/Messages.json"
#: How long the faults may take to be used up before the outage begins.
FAULTS_WINDOW = 300.0


class Drill:
    """One run: the tenant, the messages it queued, what it saw."""

    def __init__(self, *, opts: dict) -> None:
        self.opts = opts
        self.sandbox = opts["sandbox_url"].rstrip("/")
        self.portal = (opts["portal_url"] or "").rstrip("/")
        self.run = timezone.now().strftime("%H%M%S")
        self.message_ids: list[int] = []
        self.portal_requests, self.portal_5xx = 0, Counter()
        self.releases, self._next_release = 0, 0.0
        self.tenant: Tenant | None = None

    # --- setup and load -------------------------------------------------------------------------

    def tenant_prepare(self) -> Tenant:
        """A tenant on a subaccount of its own at the sandbox (found again on a re-run)."""
        slug = self.opts["slug"]
        existing = Tenant.objects.filter(slug=slug).first()
        sub = subaccount_find_or_create(
            friendly_name=f"Drill {slug}", account_sid=existing.account_sid if existing else ""
        )
        fields = {"name": f"Drill {slug}", "account_sid": sub.sid, "auth_token": sub.auth_token}
        self.tenant, _ = tenant_upsert(slug=slug, fields=fields, audit=SYSTEM)
        # Pacing is another drill's subject: let the retries, not the bucket, set the pace.
        sending_policy_update(tenant=self.tenant, changes={"messages_per_second": 50}, audit=SYSTEM)
        return self.tenant

    def recipients(self) -> list[str]:
        return [f"+1212555{100 + i:04d}" for i in range(self.opts["messages"])]

    def faults_inject(self, recipients: list[str]) -> dict[str, int]:
        """The fault plan (module docstring, step 2); returns how many of each were planned."""
        total = len(recipients)
        stall = self.opts["stall_seconds"]
        base = {"path_contains": MESSAGES_PATH, "method": "POST"}
        accepted = recipients[: max(1, total // 10)]
        plan = [{**base, "kind": "timeout", "accept": True, "to": to, "stall_seconds": stall} for to in accepted]
        plan += [
            {**base, "kind": "500", "count": max(1, total // 5)},
            {**base, "kind": "429", "count": max(1, total // 5)},
            {**base, "kind": "timeout", "count": max(1, total // 10), "stall_seconds": stall},
        ]
        for fault in plan:
            requests.post(f"{self.sandbox}/sandbox/faults", json=fault, timeout=10).raise_for_status()
        return {
            "500": plan[-3]["count"],
            "429": plan[-2]["count"],
            "timeout": plan[-1]["count"],
            "timeout_after_accepting": len(accepted),
        }

    def queue(self, recipients: list[str]) -> None:
        for to in recipients:
            message = message_send(
                tenant=self.tenant,
                to=to,
                body=f"Drill {self.run}: your order {to[-4:]} shipped.",
                purpose=Purpose.TRANSACTIONAL,
                sender=MAGIC_FROM,
            )
            self.message_ids.append(message.pk)

    # --- waiting, doing beat's part --------------------------------------------------------------

    def tick(self) -> None:
        """One beat-equivalent step: the release task when due, a look at the portal's pages."""
        now = time.monotonic()
        if now >= self._next_release:
            deferred_messages_release_task.delay()
            self.releases += 1
            self._next_release = now + self.opts["release_every"]
        if self.portal:
            for path in ("/healthz", "/accounts/login/"):
                try:
                    status = requests.get(self.portal + path, timeout=30).status_code
                except requests.RequestException:
                    status = 599  # unanswered counts as a failure of the portal too
                self.portal_requests += 1
                if status >= 500:
                    self.portal_5xx[f"{path} {status}"] += 1
        time.sleep(1.0)

    def wait(self, what: str, done, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = done()
            if value:
                return value
            self.tick()
        raise CommandError(f"Timed out after {timeout:g} s waiting for {what}.")

    def faults_used_up(self) -> bool:
        return requests.get(f"{self.sandbox}/sandbox/faults", timeout=10).json() == []

    def sandbox_up(self) -> bool:
        try:
            return requests.get(f"{self.sandbox}/sandbox/", timeout=2).ok
        except requests.RequestException:
            return False

    def outage(self, seconds: float) -> None:
        requests.post(f"{self.sandbox}/sandbox/outage", json={"seconds": seconds}, timeout=10).raise_for_status()
        self.wait("the outage to begin", lambda: not self.sandbox_up(), timeout=10)

    def pending(self) -> int:
        return Message.all_tenants.filter(pk__in=self.message_ids, status=statuses.PENDING).count()

    # --- the verdict ----------------------------------------------------------------------------

    def verdict(self) -> dict:
        rows = list(
            Message.all_tenants.filter(pk__in=self.message_ids).values("pk", "sid", "status", "body", "to_number")
        )
        held = requests.get(
            f"{self.sandbox}/sandbox/messages", params={"account_sid": self.tenant.account_sid}, timeout=30
        ).json()
        outbound = [m for m in held if m["direction"].startswith("outbound")]
        at_twilio = defaultdict(list)
        for m in outbound:
            at_twilio[m["body"]].append(m["sid"])
        failed = [r for r in rows if r["status"] == statuses.FAILED]
        return {
            "messages": len(rows),
            "at_twilio": len(outbound),
            "lost": sum(1 for r in rows if not at_twilio[r["body"]] and r["status"] != statuses.FAILED),
            "duplicated": sum(max(0, len(at_twilio[r["body"]]) - 1) for r in rows),
            "failed": len(failed),
            "sid_mismatch": sum(1 for r in rows if at_twilio[r["body"]] and r["sid"] not in at_twilio[r["body"]]),
            "statuses": dict(Counter(r["status"] for r in rows)),
            "backoff": self.backoff(outbound),
        }

    def backoff(self, outbound: list[dict]) -> dict:
        """Seconds from each fault served to the next attempt at the same recipient, by kind:
        the retries' spacing as Twilio saw it (creation times are whole seconds)."""
        injected = requests.get(f"{self.sandbox}/sandbox/faults/injected", timeout=10).json()
        attempts = defaultdict(list)
        for fault in injected:
            if MESSAGES_PATH in fault["path"] and fault["to"]:
                kind = str(fault["status"] or ("timeout_after_accepting" if "accept" in fault["mode"] else "timeout"))
                attempts[fault["to"]].append((fault["at"], kind))
        for m in outbound:
            attempts[m["to"]].append((parsedate_to_datetime(m["date_created"]).timestamp(), "created"))
        gaps = defaultdict(list)
        for events in attempts.values():
            events.sort()
            for (at, kind), (later, _) in zip(events, events[1:], strict=False):
                if kind != "created":
                    gaps[kind].append(round(later - at, 2))
        served = Counter(str(f["status"] or f["mode"]) for f in injected if MESSAGES_PATH in f["path"])
        return {
            "faults_served": dict(served),
            "gap_seconds": {
                kind: {"n": len(v), "min": min(v), "median": statistics.median(v), "max": max(v)}
                for kind, v in sorted(gaps.items())
            },
        }


class Command(BaseCommand):
    help = "Drill: Twilio answering 500, 429, timeouts, then unreachable; 0 lost, 0 duplicated."

    def add_arguments(self, parser):
        parser.add_argument("--sandbox-url", default=settings.TWILIO_API_BASE_URL)
        parser.add_argument("--portal-url", default="", help="Load its /healthz and login page meanwhile.")
        parser.add_argument("--slug", default="drill-twilio-faults")
        parser.add_argument("--messages", type=int, default=50)
        parser.add_argument("--outage-seconds", type=float, default=600.0)
        parser.add_argument("--stall-seconds", type=float, default=2 * settings.TWILIO_HTTP_TIMEOUT)
        parser.add_argument("--release-every", type=float, default=10.0)
        parser.add_argument("--settle-seconds", type=float, default=900.0, help="After the outage, at most.")

    def handle(self, *args, **opts):
        sandbox = opts["sandbox_url"] or ""
        if not sandbox.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise CommandError("--sandbox-url must be the local sandbox on a loopback address.")
        if opts["stall_seconds"] <= settings.TWILIO_HTTP_TIMEOUT:
            raise CommandError("--stall-seconds must exceed TWILIO_HTTP_TIMEOUT, or no timeout happens.")
        started, began = timezone.now(), time.monotonic()
        drill = Drill(opts=opts)
        drill.tenant_prepare()
        recipients = drill.recipients()
        during_outage = max(1, len(recipients) // 5)
        planned = drill.faults_inject(recipients)
        drill.queue(recipients[:-during_outage])
        drill.wait("the faults to be served", drill.faults_used_up, timeout=FAULTS_WINDOW)
        # Their retries land before the outage, so the gaps show the backoff, not the outage.
        drill.wait("the first messages to be sent", lambda: drill.pending() == 0, timeout=FAULTS_WINDOW)
        outage_at = time.monotonic()
        drill.outage(opts["outage_seconds"])
        drill.queue(recipients[-during_outage:])
        drill.wait("the outage to end", drill.sandbox_up, timeout=opts["outage_seconds"] + 30)
        outage_took = time.monotonic() - outage_at
        drill.wait("every message to leave pending", lambda: drill.pending() == 0, timeout=opts["settle_seconds"])
        report = {
            "date": started.isoformat(timespec="seconds"),
            "faults_planned": planned,
            "outage_seconds": opts["outage_seconds"],
            "outage_observed_seconds": round(outage_took, 1),
            **drill.verdict(),
            "portal_requests": drill.portal_requests,
            "portal_5xx": sum(drill.portal_5xx.values()),
            "portal_5xx_by_page": dict(drill.portal_5xx),
            "release_runs": drill.releases,
            "runtime_seconds": round(time.monotonic() - began, 1),
        }
        self.stdout.write(json.dumps(report, indent=2))
        if report["lost"] or report["duplicated"] or report["failed"] or report["sid_mismatch"]:
            raise CommandError("Drill failed: messages lost, duplicated, failed or mismatched (report above).")
