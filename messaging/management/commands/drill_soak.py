"""`drill_soak [--messages 2000000] [--seconds 60] [--rate R] [--sandbox-url URL]`: the soak of
the Drills, in one run, on a scratch PostgreSQL database (its name must say "bench" or "test"
unless --allow-any-database).

1. A tenant of its own, its subaccount created at the local Twilio sandbox (`--sandbox-url`,
   loopback only: the process's TWILIO_API_BASE_URL), seeded set-based with `--messages`
   messages like `bench_webhooks` (`--targets` of them `sent`: the callbacks' targets).
2. gunicorn as deployed (gthread, DEBUG off, `commsportal.bench`, the repository's
   gunicorn.conf.py): the webhook pool (`--workers` x `--threads`), and the portal's own pool
   for pages (`--page-workers` x `--page-threads`; 0 workers: pages share the webhook pool), as
   the README's deployment routes `/webhooks/` and everything else at the proxy, and with its
   CPU weights: the webhook pool `--webhook-nice` steps below the pages' (`cpu_weight_lower`;
   0: the same weight). One public origin (PUBLIC_BASE_URL = the webhook pool, where the
   signatures point), and a prefork Celery worker in the same environment
   (TWILIO_API_BASE_URL = the sandbox).
3. Calibration: `--calibration-seconds` of signed `delivered` callbacks as fast as the load
   generator goes (`drive`, as the speed benchmark); the soak's rate is half of it (or `--rate`).
4. For `--seconds`, at once:
   - signed webhooks at that rate, paced on `--connections` keep-alive connections: three in
     four a `delivered` callback for another seeded `sent` message, one in four a new inbound
     SMS; every answer's code recorded;
   - a worker consuming: one outbound message a second queued through the portal's own send
     service (`message_send`), sent by the worker to the sandbox;
   - a user browsing the message log through the pages' pool, signed in through /accounts/login/
     (CSRF, a real session cookie): first page, a status filter, the next page, in turn.
5. Then waits until every queued message is at the sandbox and checks nothing was lost: each
   2xx-answered callback applied (the message `delivered`, one event), each 2xx-answered inbound
   stored once, each outbound held by the sandbox exactly once.

Prints a JSON report (with the webhooks' answer times too: they yield the CPU to pages, not
their answers); exits non-zero when anything was lost or duplicated, any answer was 5xx
(or 4xx, or none), or the log page's p99 reached `--page-p99-ms` (the issue's 150 ms).
Everything it created in the database is deleted afterwards.
"""

from __future__ import annotations

import http.client
import json
import math
import multiprocessing
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urljoin

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from messaging import statuses
from messaging.compliance.policy import sending_policy_update
from messaging.delivery.queueing import message_send
from messaging.models import Message, MessageEvent, Purpose
from tenants.audit import SYSTEM
from tenants.lifecycle import subaccount_find_or_create
from tenants.models import Membership, Tenant
from tenants.services import tenant_upsert

from ._bench_load import Server, browse, cpu_weight_lower, drive, process_stop
from .bench_webhooks import (
    INBOUND_PATH,
    SENDER,
    STATUS_PATH,
    _cleanup,
    _inbound_params,
    _seed,
    _signed,
    _target_sid,
    refuse_unless_scratch_database,
)

#: One request in this many is a new inbound SMS; the others are `delivered` callbacks.
INBOUND_EVERY = 4
#: How long the queued outbound messages may take to reach the sandbox after the soak.
SETTLE_SECONDS = 180.0
WORKER_STARTUP_SECONDS = 90.0
PAGE_PAUSE_SECONDS = 0.2
WARM_PAGES_SECONDS = 3.0
CHUNK = 5000


def _status_request(tenant: Tenant, token: str, base_url: str, sid: str) -> tuple[str, str, str]:
    params = {
        "AccountSid": tenant.account_sid, "MessageSid": sid, "SmsSid": sid, "MessageStatus": "delivered",
        "SmsStatus": "delivered", "From": SENDER, "To": "+14155550100", "ApiVersion": "2010-04-01",
    }  # fmt: skip
    return _signed(token, base_url, STATUS_PATH, params)


def _calibration_range(targets: int) -> range:
    """The targets the calibration may call back (the first quarter); the soak takes the rest."""
    return range(1, targets // 4 + 1)


class Soak:
    """One run: the tenant, the processes, what each of the three loads saw."""

    def __init__(self, *, opts: dict) -> None:
        self.opts = opts
        self.prefix = secrets.token_hex(4)
        self.scratch = Path(tempfile.mkdtemp(prefix="drill-soak-"))
        self.tenant: Tenant | None = None
        self.token = ""
        self.server: Server | None = None  # the webhook pool (`/webhooks/` at the proxy)
        self.webhook_weight = "default"  # what `--webhook-nice` applied to it
        self.pages_server: Server | None = None  # the portal's pool, or None: pages on the webhook pool
        self.worker: subprocess.Popen | None = None
        self.stop_at = 0.0
        self.answers: list[tuple[str, str, int, float]] = []  # (kind, sid, status, ms) per webhook sent
        self.pages: list[tuple[str, int, float]] = []  # (page, status, ms)
        self.outbound_ids: list[int] = []
        self.lock = threading.Lock()

    # --- setup ----------------------------------------------------------------------------------

    def tenant_prepare(self) -> None:
        """A tenant on a subaccount of its own at the sandbox, pacing out of the way."""
        slug = f"drill-soak-{self.prefix}"
        sub = subaccount_find_or_create(friendly_name=f"Soak {slug}")
        fields = {"name": f"Soak {slug}", "account_sid": sub.sid, "auth_token": sub.auth_token}
        self.tenant, _ = tenant_upsert(slug=slug, fields=fields, audit=SYSTEM)
        self.token = sub.auth_token.reveal()  # the signatures are computed as Twilio does
        sending_policy_update(tenant=self.tenant, changes={"messages_per_second": 50}, audit=SYSTEM)

    def processes_start(self) -> None:
        """gunicorn, then a prefork Celery worker in the very same environment."""
        twilio = {
            "TWILIO_API_BASE_URL": settings.TWILIO_API_BASE_URL,
            "TWILIO_ACCOUNT_SID": settings.TWILIO_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": settings.TWILIO_AUTH_TOKEN,
        }
        self.server = Server(self.scratch, workers=self.opts["workers"], threads=self.opts["threads"], extra_env=twilio)
        # The deployment's CPU weights (README › Deployment): callbacks yield to a person's page.
        self.webhook_weight = cpu_weight_lower(self.server.process.pid, self.opts["webhook_nice"])
        if self.opts["page_workers"]:
            self.pages_server = Server(
                self.scratch,
                workers=self.opts["page_workers"],
                threads=self.opts["page_threads"],
                extra_env={**twilio, "PUBLIC_BASE_URL": self.server.base_url},  # one public origin, as behind the proxy
                name="gunicorn-pages",
            )
        log = self.scratch / "worker.log"
        with log.open("wb") as out:
            self.worker = subprocess.Popen(
                [str(Path(sys.executable).with_name("celery")), "-A", "commsportal", "worker", "--pool=prefork",
                 "--concurrency=2", "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "info"],
                cwd=settings.BASE_DIR, env=self.server.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + WORKER_STARTUP_SECONDS
        while "ready." not in log.read_text(errors="replace"):
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise CommandError(f"The Celery worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        servers = (self.server, self.pages_server)
        for process in (self.worker, *(server.process for server in servers if server)):
            if process is not None:
                process_stop(process)
        shutil.rmtree(self.scratch, ignore_errors=True)

    # --- the loads ------------------------------------------------------------------------------

    def calibrate(self) -> dict:
        """Signed `delivered` callbacks as fast as `drive` sends them: the speed benchmark's rate."""
        batch = [
            _status_request(self.tenant, self.token, self.server.base_url, _target_sid(self.prefix, g))
            for g in _calibration_range(self.opts["targets"])
        ]
        drive(self.server, [("/bench/bare/", "", "")], self.scratch, seconds=2, connections=4)  # warm up
        return drive(
            self.server,
            batch,
            self.scratch,
            seconds=self.opts["calibration_seconds"],
            connections=self.opts["connections"],
        )

    def webhooks(self, rate: float) -> list[tuple[str, str, tuple[str, str, str]]]:
        """The soak's requests, in order: (kind, MessageSid, (path, signature, body))."""
        count = math.ceil(rate * self.opts["seconds"])
        first = len(_calibration_range(self.opts["targets"])) + 1
        statuses_needed = count - count // INBOUND_EVERY
        if first + statuses_needed - 1 > self.opts["targets"]:
            raise CommandError(
                f"{statuses_needed:,} callbacks at {rate:.0f}/s need --targets of at least "
                f"{4 * statuses_needed // 3 + 4:,}"
            )
        batch, g = [], first
        for i in range(count):
            if i % INBOUND_EVERY == INBOUND_EVERY - 1:
                params = _inbound_params(self.tenant, i)
                signed = _signed(self.token, self.server.base_url, INBOUND_PATH, params)
                batch.append(("inbound", params["MessageSid"], signed))
            else:
                sid = _target_sid(self.prefix, g)
                batch.append(("status", sid, _status_request(self.tenant, self.token, self.server.base_url, sid)))
                g += 1
        return batch

    def send_paced(self, batch, rate: float, started: float, lane: int) -> None:
        """Lane `lane` of the connections: request i is due `i / rate` seconds after `started`."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        seen = []
        for i in range(lane, len(batch), self.opts["connections"]):
            due = started + i / rate
            if due >= self.stop_at:
                break
            time.sleep(max(0.0, due - time.perf_counter()))
            kind, sid, (path, signature, body) = batch[i]
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
            sent = time.perf_counter()
            try:
                conn.request("POST", path, body.encode(), headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()  # reconnects on the next request
                status = 0  # unanswered
            seen.append((kind, sid, status, (time.perf_counter() - sent) * 1000))
        conn.close()
        with self.lock:
            self.answers.extend(seen)

    def queue_outbound(self) -> None:
        """One message a second through the portal's send service, for the worker to deliver."""
        n = 0
        try:
            while time.perf_counter() < self.stop_at:
                message = message_send(
                    tenant=self.tenant,
                    to=f"+1212555{100 + n % 9000:04d}",
                    body=f"Soak {self.prefix}: your order {n} shipped.",
                    purpose=Purpose.TRANSACTIONAL,
                    sender=SENDER,
                )
                self.outbound_ids.append(message.pk)
                n += 1
                time.sleep(1.0)
        finally:
            connection.close()

    def sign_in(self) -> tuple[requests.Session, dict[str, str]]:
        """A portal user of the tenant, logged in through the login form; the log's three URLs."""
        password = secrets.token_urlsafe(16)
        username = f"soak-{self.prefix}"
        user = get_user_model().objects.create_user(username=username, password=password)
        Membership.objects.create(user=user, tenant=self.tenant, role=Membership.Role.ADMIN)
        session, base = requests.Session(), (self.pages_server or self.server).base_url
        login = session.get(f"{base}/accounts/login/", timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        _plain_cookies(session)  # the TLS proxy's part: Secure cookies over plain http on loopback
        answer = session.post(
            f"{base}/accounts/login/",
            data={"csrfmiddlewaretoken": token, "username": username, "password": password},
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=30,
            allow_redirects=False,
        )
        _plain_cookies(session)
        if answer.status_code != 302 or "sessionid" not in session.cookies:
            raise CommandError(f"Could not log in: {answer.status_code}")
        log_url = base + reverse("message_list", kwargs={"tenant_slug": self.tenant.slug})
        first = session.get(log_url, timeout=30, allow_redirects=False)
        older = re.search(r'href="(\?cursor=[^"]+)" rel="next"', first.text)
        if first.status_code != 200 or not older:
            raise CommandError(f"The message log did not answer with a next page: {first.status_code}")
        return session, {
            "first page": log_url,
            "filtered": f"{log_url}?status=undelivered",
            "next page": urljoin(log_url, older.group(1).replace("&amp;", "&")),
        }

    def soak(self, rate: float) -> float:
        """The three loads at once for `--seconds`; returns the seconds the webhooks took."""
        batch = self.webhooks(rate)
        session, urls = self.sign_in()
        cookies = {cookie.name: cookie.value for cookie in session.cookies}
        # The user browses from a process of their own, as a browser would: in this one the page
        # timer would share the GIL with the webhook lanes' threads and time their turns too.
        with multiprocessing.get_context("spawn").Pool(1) as user:
            # Started, imported, and the pages' pool warmed as a running portal's is (templates
            # compiled, past gunicorn.conf.py's GC freeze), as the calibration warms the webhooks'.
            user.apply(browse, (cookies, urls), {"seconds": WARM_PAGES_SECONDS, "pause": 0})
            started = time.perf_counter()
            self.stop_at = started + self.opts["seconds"]
            browsing = user.apply_async(
                browse, (cookies, urls), {"seconds": self.opts["seconds"], "pause": PAGE_PAUSE_SECONDS}
            )
            lanes = [
                threading.Thread(target=self.send_paced, args=(batch, rate, started, n))
                for n in range(self.opts["connections"])
            ]
            outbound = threading.Thread(target=self.queue_outbound)
            for thread in (*lanes, outbound):
                thread.start()
            for thread in lanes:
                thread.join()
            took = time.perf_counter() - started
            outbound.join()
            self.pages = browsing.get(timeout=self.opts["seconds"] + 120)
        return took

    # --- the verdict ----------------------------------------------------------------------------

    def settle(self) -> dict:
        """Waits until every queued message left `pending` and is at the sandbox; counts them."""
        deadline = time.monotonic() + SETTLE_SECONDS
        sandbox = settings.TWILIO_API_BASE_URL
        while True:
            held = requests.get(
                f"{sandbox}/sandbox/messages", params={"account_sid": self.tenant.account_sid}, timeout=30
            ).json()
            at_twilio = Counter(m["body"] for m in held if m["direction"].startswith("outbound"))
            pending = Message.all_tenants.filter(pk__in=self.outbound_ids, status=statuses.PENDING).count()
            bodies = list(Message.all_tenants.filter(pk__in=self.outbound_ids).values_list("body", flat=True))
            if (not pending and all(at_twilio[b] for b in bodies)) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        return {
            "queued": len(bodies),
            "at_sandbox": sum(at_twilio[b] for b in bodies),
            "lost": sum(1 for b in bodies if not at_twilio[b]),
            "duplicated": sum(max(0, at_twilio[b] - 1) for b in bodies),
        }

    def verdict(self) -> dict:
        """Lost and duplicated among the webhooks answered 2xx."""
        ok = {"status": [], "inbound": []}
        for kind, sid, status, _ in self.answers:
            if 200 <= status < 300:
                ok[kind].append(sid)
        mine = Message.all_tenants.filter(tenant=self.tenant)
        delivered, events, stored = set(), Counter(), Counter()
        for i in range(0, len(ok["status"]), CHUNK):
            sids = ok["status"][i : i + CHUNK]
            delivered.update(mine.filter(sid__in=sids, status=statuses.DELIVERED).values_list("sid", flat=True))
            events.update(
                MessageEvent.all_tenants.filter(
                    tenant=self.tenant, status=statuses.DELIVERED, message__sid__in=sids
                ).values_list("message__sid", flat=True)
            )
        for i in range(0, len(ok["inbound"]), CHUNK):
            sids = ok["inbound"][i : i + CHUNK]
            stored.update(mine.filter(sid__in=sids, direction="inbound").values_list("sid", flat=True))
        return {
            "status_callbacks": {
                "answered_2xx": len(ok["status"]),
                "lost": sum(1 for sid in ok["status"] if sid not in delivered or not events[sid]),
                "duplicated": sum(max(0, events[sid] - 1) for sid in ok["status"]),
            },
            "inbound": {
                "answered_2xx": len(ok["inbound"]),
                "lost": sum(1 for sid in ok["inbound"] if not stored[sid]),
                "duplicated": sum(max(0, stored[sid] - 1) for sid in ok["inbound"]),
            },
        }

    def page_figures(self) -> dict:
        times = sorted(ms for _, status, ms in self.pages if status == 200)
        by_page = {
            page: round(statistics.median([ms for p, s, ms in self.pages if p == page and s == 200] or [0]), 1)
            for page in ("first page", "filtered", "next page")
        }
        return {
            "requests": len(self.pages),
            "not_200": sum(1 for _, status, _ in self.pages if status != 200),
            **{f"{cut}_ms": ms for cut, ms in _percentiles(times).items()},
            "median_ms_by_page": by_page,
            "slowest_ms": [round(ms, 1) for ms in times[-3:][::-1]],
        }


def _percentiles(times: list[float]) -> dict[str, float | None]:
    """p50 and p99 of `times` (ms), to 0.1 ms; None without any."""
    if not times:
        return {"p50": None, "p99": None}
    cuts = statistics.quantiles(times, n=100) if len(times) > 1 else [times[0]] * 99
    return {"p50": round(statistics.median(times), 1), "p99": round(cuts[98], 1)}


def _plain_cookies(session: requests.Session) -> None:
    for cookie in session.cookies:
        cookie.secure = False


def run_soak(*, opts: dict, log=print) -> dict:
    if connection.vendor != "postgresql":
        raise CommandError("drill_soak runs on PostgreSQL: set DATABASE_URL to a scratch database.")
    soak = Soak(opts=opts)
    try:
        soak.tenant_prepare()
        log(f"seeding {opts['messages']:,} messages…")
        _seed(soak.tenant, opts["messages"], soak.prefix, opts["targets"])
        log("starting gunicorn and the Celery worker…")
        soak.processes_start()
        calibration = soak.calibrate()
        if calibration["refused"]:
            raise CommandError(f"calibration: answers other than 2xx {calibration}")
        rate = opts["rate"] or calibration["per_second"] / 2
        log(f"calibration {calibration['per_second']:.0f}/s; soaking {opts['seconds']:g} s at {rate:.0f}/s…")
        took = soak.soak(rate)
        log("waiting for the queued messages to reach the sandbox…")
        outbound = soak.settle()
        answers = Counter(status for _, _, status, _ in soak.answers)
        report = {
            "date": timezone.now().isoformat(timespec="seconds"),
            "messages_in_tenant": Message.all_tenants.filter(tenant=soak.tenant).count(),
            "seconds": opts["seconds"],
            "pools": {
                "webhooks": f"{opts['workers']} x {opts['threads']}",
                "pages": f"{opts['page_workers']} x {opts['page_threads']}" if opts["page_workers"] else "webhooks'",
                "webhooks_cpu_weight": soak.webhook_weight,
            },
            "calibration_per_second": calibration["per_second"],
            "calibration": calibration,
            "target_per_second": round(rate, 1),
            "achieved_per_second": round(len(soak.answers) / took, 1),
            "requests": len(soak.answers) + len(soak.pages),
            "webhooks": len(soak.answers),
            "answers": {str(code): n for code, n in sorted(answers.items())},
            "5xx": sum(n for code, n in answers.items() if code >= 500),
            "unanswered": answers[0],
            "refused_4xx": sum(n for code, n in answers.items() if 400 <= code < 500),
            "webhook_ms": _percentiles([ms for _, _, status, ms in soak.answers if status]),
            **soak.verdict(),
            "outbound": outbound,
            "log_page": soak.page_figures(),
        }
        parts = (report["status_callbacks"], report["inbound"], outbound)
        report["lost"] = sum(part["lost"] for part in parts)
        report["duplicated"] = sum(part["duplicated"] for part in parts)
        report["5xx"] += sum(1 for _, status, _ in soak.pages if status >= 500)
        return report
    finally:
        soak.stop()
        if soak.tenant is not None:
            get_user_model().objects.filter(username=f"soak-{soak.prefix}").delete()
            _cleanup(soak.tenant)


class Command(BaseCommand):
    help = "Drill: a soak of signed webhooks, a worker sending and a user browsing the log, on millions of messages."

    def add_arguments(self, parser):
        parser.add_argument("--sandbox-url", default=settings.TWILIO_API_BASE_URL, help="The local Twilio sandbox.")
        parser.add_argument("--messages", type=int, default=2_000_000, help="Messages seeded in the tenant.")
        parser.add_argument("--targets", type=int, default=200_000, help="Seeded `sent` messages to call back.")
        parser.add_argument("--seconds", type=float, default=60, help="How long the soak lasts.")
        parser.add_argument("--rate", type=float, default=0, help="Webhooks/s (default: half the calibration's).")
        parser.add_argument("--calibration-seconds", type=float, default=5)
        parser.add_argument("--connections", type=int, default=16, help="Keep-alive webhook connections.")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn gthread worker processes.")
        parser.add_argument("--threads", type=int, default=8, help="Threads per gunicorn worker.")
        parser.add_argument(
            "--page-workers", type=int, default=1,
            help="gunicorn worker processes of the portal's own pool (0: pages share the webhook pool).",
        )  # fmt: skip
        parser.add_argument("--page-threads", type=int, default=4, help="Threads per worker of the portal's pool.")
        parser.add_argument(
            "--webhook-nice", type=int, default=10, choices=range(20),
            help="CPU weight of the webhook pool, in nice steps below the pages' (README › Deployment; 0: the same).",
        )  # fmt: skip
        parser.add_argument("--page-p99-ms", type=float, default=150.0, help="The log page's p99 must stay under.")
        parser.add_argument("--allow-any-database", action="store_true", help="Run on a database of any name.")

    def handle(self, *args, **opts):
        sandbox = (opts["sandbox_url"] or "").rstrip("/")
        if not sandbox.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise CommandError("--sandbox-url must be the local sandbox on a loopback address.")
        if sandbox != settings.TWILIO_API_BASE_URL:
            raise CommandError("Set TWILIO_API_BASE_URL to --sandbox-url: this process creates the subaccount.")
        opts["targets"] = min(opts["targets"], opts["messages"])
        if opts["targets"] < 100:
            raise CommandError("--targets (and --messages) must be at least 100.")
        if not opts["allow_any_database"]:
            refuse_unless_scratch_database()
        report = run_soak(opts=opts, log=lambda text: self.stderr.write(text))
        self.stdout.write(json.dumps(report, indent=2))
        page_p99 = report["log_page"]["p99_ms"]
        if report["lost"] or report["duplicated"] or report["5xx"] or report["unanswered"] or report["refused_4xx"]:
            raise CommandError("Soak failed: lost, duplicated, 5xx, 4xx or unanswered requests (report above).")
        if report["log_page"]["not_200"] or page_p99 is None or page_p99 >= opts["page_p99_ms"]:
            raise CommandError(
                f"Soak failed: the log page's p99 is {page_p99} ms (must be under {opts['page_p99_ms']:g})."
            )
