"""`bench_webhooks [--requests 2000] [--concurrency 8] [--workers 2]`: how fast the portal takes
Twilio's webhooks, measured against a bare Django view on the same server in the same run.

Starts gunicorn (the production server, DEBUG off) with `commsportal.bench` — the project plus a
bare view that only answers 204, behind the same middleware — on a throw-away tenant, and sends
each phase from `--concurrency` client threads, a new connection per request as Twilio does:

  bare      POST of an inbound-sized form to the bare view (the floor: server, middleware)
  status    signed delivery callbacks (`delivered`) for messages the portal sent: signature
            check, the row locked and advanced, a timeline event
  inbound   signed inbound SMS, each a new MessageSid: stored once, keywords checked, TwiML
  rejected  the same inbound with a wrong signature: refused 403 and counted per tenant

Each phase must get only its expected status codes, and its effects are checked in the database
(every callback applied, every inbound stored) before the figures count. Reports requests/s and
latency percentiles per phase, and each phase's rate as a fraction of the bare view's. Run it on
PostgreSQL for figures worth quoting, on a scratch database (its name must say "bench" unless
DEBUG is on or --allow-any-database): the tenant and its rows are deleted afterwards.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone
from twilio.request_validator import RequestValidator

from messaging.models import Message, MessageEvent
from tenants.models import AuditEvent, Tenant, WebhookRejection

SENDER = "+15005550006"
EXPECTED = {"bare": 204, "status": 204, "inbound": 200, "rejected": 403}
STARTUP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _customer(i: int) -> str:
    return f"+1415{2000000 + i}"


def _database_url() -> str:
    """This process's database as a URL the server process is given (DEBUG off requires one)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    raise CommandError("Set DATABASE_URL.")


class Server:
    """gunicorn serving `commsportal.bench` with this process's database and encryption keys."""

    def __init__(self, workers: int) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.scratch = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
        self.log = self.scratch / "gunicorn.log"
        env = {**os.environ, "ENV_FILE": ""}
        if not (env.get("REDIS_URL") or env.get("CACHE_URL")):
            env["CACHE_URL"] = f"filecache://{self.scratch / 'cache'}"  # DEBUG off wants a named cache
        env.update(
            DJANGO_SETTINGS_MODULE="commsportal.settings",
            DEBUG="False",
            SECURE_SSL_REDIRECT="False",  # plain http on 127.0.0.1: no TLS proxy in front
            SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
            DATABASE_URL=_database_url(),
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            FIELD_ENCRYPTION_KEY=",".join(settings.FIELD_ENCRYPTION_KEYS),
            PUBLIC_BASE_URL=self.base_url,
            ALLOWED_HOSTS="127.0.0.1",
        )
        gunicorn = Path(sys.executable).with_name("gunicorn")
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(gunicorn), "commsportal.bench:application", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", str(workers), "--log-level", "warning"],
                cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise CommandError(f"gunicorn did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            return _post(self.port, "/bench/bare/", b"", {})[0] == 204
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        shutil.rmtree(self.scratch, ignore_errors=True)


def _post(port: int, path: str, body: bytes, headers: dict) -> tuple[int, float]:
    """One request on a new connection; (status, seconds)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded", **headers})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


def _fire(port: int, batch: list[tuple[str, bytes, dict]], concurrency: int) -> dict:
    """Send `batch` from `concurrency` threads; rate and latency figures."""
    chunks = [batch[i::concurrency] for i in range(concurrency)]

    def run(chunk):
        return [_post(port, *request) for request in chunk]

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [r for chunk in pool.map(run, chunks) for r in chunk]
    elapsed = time.perf_counter() - started
    latencies = sorted(seconds for _, seconds in results)
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(results),
        "seconds": round(elapsed, 3),
        "per_second": round(len(results) / elapsed, 1),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "statuses": dict(Counter(status for status, _ in results)),
    }


def _signed(validator: RequestValidator, base_url: str, path: str, params: dict) -> tuple[str, bytes, dict]:
    signature = validator.compute_signature(base_url + path, params)
    return path, urlencode(params).encode(), {"X-Twilio-Signature": signature}


def _inbound_params(tenant: Tenant, i: int) -> dict:
    sid = "SM" + secrets.token_hex(16)
    return {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
        "FromZip": "94105", "SmsSid": sid, "FromState": "CA", "SmsStatus": "received", "FromCity": "SAN FRANCISCO",
        "Body": "Hi, is my order ready for pickup?", "FromCountry": "US", "To": SENDER, "ToZip": "",
        "NumSegments": "1", "MessageSid": sid, "AccountSid": tenant.account_sid, "From": _customer(i),
        "ApiVersion": "2010-04-01",
    }  # fmt: skip


def _seed_sent(tenant: Tenant, count: int) -> list[Message]:
    now = timezone.now()
    return Message.all_tenants.bulk_create(
        Message(
            tenant=tenant,
            direction=Message.Direction.OUTBOUND,
            sid="SM" + secrets.token_hex(16),
            from_number=SENDER,
            to_number=_customer(i),
            body="Your order is ready for pickup.",
            status="sent",
            purpose="transactional",
            gate_decision="send",
            accepted_at=now,
            status_updated_at=now,
        )
        for i in range(count)
    )


def _cleanup(tenant: Tenant) -> None:
    MessageEvent.all_tenants.filter(tenant=tenant).delete()
    Message.all_tenants.filter(tenant=tenant).delete()
    WebhookRejection.objects.filter(tenant=tenant).delete()
    AuditEvent.objects.filter(tenant=tenant).delete()
    tenant.delete()


def refuse_unless_scratch_database() -> None:
    """The benchmark creates and deletes a tenant and thousands of rows, and deletes its audit
    rows (append-only everywhere else): never on a database that matters."""
    name = Path(str(settings.DATABASES["default"]["NAME"])).name  # a SQLite file: its name, not its folders
    if not (settings.DEBUG or "bench" in name or "test" in name):
        raise CommandError(
            f"Refusing to benchmark on database {name!r}: use a scratch database whose name contains "
            "'bench' (or 'test'), or DEBUG on, or pass --allow-any-database."
        )


def run_benchmark(*, requests: int, concurrency: int, workers: int, log=print) -> dict:
    token = secrets.token_hex(16)
    tenant = Tenant.objects.create(
        slug=f"bench-webhooks-{secrets.token_hex(4)}",
        name="Webhook benchmark",
        account_sid="AC" + secrets.token_hex(16),
        auth_token=token,
    )
    server = None
    try:
        sent = _seed_sent(tenant, requests)
        server = Server(workers)
        validator, wrong = RequestValidator(token), RequestValidator(secrets.token_hex(16))
        status_path = "/webhooks/twilio/messaging/status/"
        inbound_path = "/webhooks/twilio/messaging/inbound/"
        batches = {
            "bare": [("/bench/bare/", urlencode(_inbound_params(tenant, i)).encode(), {}) for i in range(requests)],
            "status": [
                _signed(
                    validator,
                    server.base_url,
                    f"{status_path}?m={m.pk}",
                    {
                        "AccountSid": tenant.account_sid,
                        "MessageSid": m.sid,
                        "MessageStatus": "delivered",
                        "SmsSid": m.sid,
                        "SmsStatus": "delivered",
                        "From": SENDER,
                        "To": m.to_number,
                        "ApiVersion": "2010-04-01",
                    },
                )  # fmt: skip
                for m in sent
            ],
            "inbound": [
                _signed(validator, server.base_url, inbound_path, _inbound_params(tenant, i)) for i in range(requests)
            ],
            "rejected": [
                _signed(wrong, server.base_url, inbound_path, _inbound_params(tenant, i)) for i in range(requests)
            ],
        }
        _fire(server.port, batches["bare"][: min(200, requests)], concurrency)  # warm up every worker
        phases = {}
        for name, batch in batches.items():
            log(f"{name}: {len(batch):,} requests…")
            figures = _fire(server.port, batch, concurrency)
            if set(figures["statuses"]) != {EXPECTED[name]}:
                raise CommandError(f"{name}: expected only HTTP {EXPECTED[name]}, got {figures['statuses']}")
            phases[name] = figures
        delivered = Message.all_tenants.filter(tenant=tenant, direction="outbound", status="delivered").count()
        stored = Message.all_tenants.filter(tenant=tenant, direction="inbound").count()
        if delivered != requests or stored != requests:
            raise CommandError(f"effects missing: {delivered} delivered and {stored} inbound of {requests} each")
        bare = phases["bare"]["per_second"]
        for figures in phases.values():
            figures["vs_bare"] = round(figures["per_second"] / bare, 2)
        return {"vendor": connection.vendor, "workers": workers, "concurrency": concurrency, "phases": phases}
    finally:
        if server is not None:
            server.stop()
        _cleanup(tenant)


class Command(BaseCommand):
    help = "Benchmark Twilio webhook intake under gunicorn against a bare Django view on the same server."

    def add_arguments(self, parser):
        parser.add_argument("--requests", type=int, default=2000, help="Requests per phase.")
        parser.add_argument("--concurrency", type=int, default=8, help="Client threads.")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes.")
        parser.add_argument(
            "--allow-any-database",
            action="store_true",
            help="Run even on a database whose name doesn't say it is a scratch one.",
        )

    def handle(self, *args, **options):
        if options["requests"] < 10:
            raise CommandError("--requests must be at least 10.")
        if not options["allow_any_database"]:
            refuse_unless_scratch_database()
        result = run_benchmark(
            requests=options["requests"],
            concurrency=options["concurrency"],
            workers=options["workers"],
            log=lambda text: self.stderr.write(text),
        )
        self.stdout.write(
            f"database {result['vendor']}, gunicorn {result['workers']} workers, "
            f"{result['concurrency']} client threads, a new connection per request"
        )
        self.stdout.write(f"{'phase':<10}{'req/s':>9}{'vs bare':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
        for name, f in result["phases"].items():
            self.stdout.write(
                f"{name:<10}{f['per_second']:>9,.1f}{f['vs_bare']:>9.2f}{f['p50_ms']:>9.1f}{f['p95_ms']:>9.1f}{f['p99_ms']:>9.1f}"
            )
