"""`bench_webhooks [--messages 2000000] [--prepared 40000] [--seconds 10] [--connections 16]
[--workers 2] [--threads 8]`: the speed table of the README, in one run, against a bare Django view.

Seeds a throw-away tenant with `--messages` messages set-based (one `INSERT … SELECT
generate_series` on PostgreSQL, spread over 30 days: outbound delivered/undelivered/failed/
sent, 10% inbound), then:

1. starts gunicorn (the production server, DEBUG off, `--worker-class gthread`: a thread pool
   per worker that keeps connections open) with `commsportal.bench`, the production WSGI app
   plus a bare view that only answers 204;
2. drives each phase for `--seconds` with wrk (Debian's `wrk`, keep-alive connections, a Lua
   script that sends a different pre-signed request each time; a Python keep-alive client
   when wrk is not installed):

   bare          the bare view behind the portal's full middleware (the issue's reference)
   bare-lane     the bare view on the webhooks' middleware lane (`commsportal.wsgi`)
   status        signed `delivered` callbacks, each for another `sent` message of the tenant
   inbound       signed inbound SMS, each a new MessageSid
   rejected      inbound with a wrong signature: refused 403 and counted per tenant

3. checks every message's final status: each callback target is `delivered` with one event or
   still `sent` (never reached), the count matches what was answered, and nothing else moved;
4. recounts the dashboard's hourly rollups (`messaging.rollups`, as the periodic task does),
   then times the message log (first page, filtered by status, next page) and the dashboard
   through the same server (DEBUG off), signed in as an admin, one keep-alive connection;
5. streams the message log's CSV export of the newest `EXPORT_DAYS` days (~470,000 rows at
   2,000,000 messages) through the real export view, as `export_benchmark` does: rows/s and
   this process's peak RSS growth.

Prints one row per figure: requests/s and the ratio to `bare`, or milliseconds, with p99.
Run it on a scratch PostgreSQL database (its name must say "bench" unless
--allow-any-database); everything it created is deleted afterwards.
"""

from __future__ import annotations

import html
import re
import secrets
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from twilio.request_validator import RequestValidator

from messaging.management.commands.export_benchmark import export_stream, seed_postgresql
from messaging.models import Message, MessageEvent, MessageHourly
from messaging.rollups import message_hourly_recount
from tenants.models import AuditEvent, Membership, Tenant, WebhookRejection

from ._bench_load import Server, drive, page_get, time_pages

SENDER = "+15005550006"
STATUS_PATH = "/webhooks/twilio/messaging/status/"
INBOUND_PATH = "/webhooks/twilio/messaging/inbound/"
#: Signed requests prepared per phase (default): more than a phase can send, so none repeats.
PREPARED = 40_000
PAGE_SAMPLES = 40
GOALS = {
    "status": "≥ 0.40x, p99 ≤ 25 ms",
    "inbound": "≥ 0.35x",
    "log first page": "≤ 25 ms",
    "log filtered": "≤ 25 ms",
    "log next page": "≤ 25 ms",
    "dashboard 24h": "≤ 60 ms",
    "dashboard 30d": "≤ 60 ms",
    "export": "≥ 50,000 rows/s, < 64 MB",
}
#: Days of the newest messages the export row streams: 7 of the 30 seeded is ~470,000 rows at
#: 2,000,000 messages, the issue's 500,000-row export.
EXPORT_DAYS = 7


def _seed_sql(prefix: str, targets: int) -> dict[str, str]:
    """Columns over the series value g: g ≤ targets are the callbacks' `sent` messages (newest)."""
    outbound = f"(g <= {targets} OR mod(g, 10) <> 0)"
    return {
        "sid": f"'SM{prefix}' || lpad(g::text, 24, '0')",
        "direction": f"CASE WHEN {outbound} THEN 'outbound' ELSE 'inbound' END",
        "to_number": "'+1415' || lpad(mod(g, 100000)::text, 7, '0')",
        # All before the run starts, so anything stamped later was moved by the run.
        "created_at": "%s::timestamptz - interval '1 minute' - g * interval '1296 milliseconds'",
        "status_updated_at": "%s::timestamptz - interval '55 seconds' - g * interval '1296 milliseconds'",
        "status": (
            f"CASE WHEN g <= {targets} THEN 'sent' WHEN NOT {outbound} THEN 'received' "
            "WHEN mod(g, 20) = 1 THEN 'undelivered' WHEN mod(g, 50) = 3 THEN 'failed' "
            "WHEN mod(g, 100) = 7 THEN 'sent' ELSE 'delivered' END"
        ),
        "error_code": (
            f"CASE WHEN g <= {targets} OR NOT {outbound} THEN NULL "
            "WHEN mod(g, 20) = 1 THEN 30003 WHEN mod(g, 50) = 3 THEN 30008 END"
        ),
    }


def _target_sid(prefix: str, g: int) -> str:
    return f"SM{prefix}{g:024d}"


def _seed(tenant: Tenant, messages: int, prefix: str, prepared: int) -> None:
    constants = {"from_number": SENDER, "body": "Your order is ready for pickup.", "num_segments": 1}
    seed_postgresql(tenant, messages, timezone.now(), varying=_seed_sql(prefix, prepared), constants=constants)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Message._meta.db_table)}")


def _inbound_params(tenant: Tenant, i: int) -> dict:
    sid = "SM" + secrets.token_hex(16)
    return {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
        "FromZip": "94105", "SmsSid": sid, "FromState": "CA", "SmsStatus": "received", "FromCity": "SAN FRANCISCO",
        "Body": "Hi, is my order ready for pickup?", "FromCountry": "US", "To": SENDER, "ToZip": "",
        "NumSegments": "1", "MessageSid": sid, "AccountSid": tenant.account_sid, "From": f"+1415{3000000 + i}",
        "ApiVersion": "2010-04-01",
    }  # fmt: skip


def _signed(token: str, base_url: str, path: str, params: dict) -> tuple[str, str, str]:
    return path, RequestValidator(token).compute_signature(base_url + path, params), urlencode(params)


def _requests(
    tenant: Tenant, token: str, base_url: str, prefix: str, prepared: int
) -> dict[str, list[tuple[str, str, str]]]:
    """Every phase's requests as (path, signature, body)."""
    status = [
        _signed(
            token,
            base_url,
            STATUS_PATH,
            {
                "AccountSid": tenant.account_sid,
                "MessageSid": sid,
                "SmsSid": sid,
                "MessageStatus": "delivered",
                "SmsStatus": "delivered",
                "From": SENDER,
                "To": "+14155550100",
                "ApiVersion": "2010-04-01",
            },
        )  # fmt: skip
        for sid in (_target_sid(prefix, g) for g in range(1, prepared + 1))
    ]
    inbound = [_signed(token, base_url, INBOUND_PATH, _inbound_params(tenant, i)) for i in range(prepared)]
    wrong = secrets.token_hex(16)
    rejected = [_signed(wrong, base_url, INBOUND_PATH, _inbound_params(tenant, i)) for i in range(2000)]
    bare_body = urlencode(_inbound_params(tenant, 0))
    return {
        "bare": [("/bench/bare/", "", bare_body)],
        "bare-lane": [("/webhooks/bench/bare/", "", bare_body)],
        "status": status,
        "inbound": inbound,
        "rejected": rejected,
    }


def _check_effects(
    tenant: Tenant, prefix: str, figures: dict, *, prepared: int, messages: int, started_at, connections: int
) -> None:
    """Every message ends where it must: callbacks answered = targets delivered (± requests in
    flight when the phase stopped), one event each, nothing else moved, every inbound stored."""
    mine = Message.all_tenants.filter(tenant=tenant)
    targets = mine.filter(sid__gte=_target_sid(prefix, 1), sid__lte=_target_sid(prefix, prepared))
    by_status = dict(targets.values_list("status").annotate(n=Count("id")).order_by())
    delivered, answered = by_status.get("delivered", 0), figures["status"]["requests"]
    if set(by_status) - {"sent", "delivered"} or not answered <= delivered <= answered + connections:
        raise CommandError(f"status callbacks: {answered} answered, targets now {by_status}")
    events = MessageEvent.all_tenants.filter(tenant=tenant, status="delivered").count()
    if events != delivered:
        raise CommandError(f"{delivered} delivered callbacks but {events} events")
    moved = mine.filter(status_updated_at__gte=started_at, direction="outbound").count()
    if moved != delivered:
        raise CommandError(f"{moved} outbound messages changed, {delivered} were called back")
    stored, answered = (
        mine.filter(direction="inbound", created_at__gte=started_at).count(),
        figures["inbound"]["requests"],
    )
    if not answered <= stored <= answered + connections:
        raise CommandError(f"inbound: {answered} answered but {stored} stored")
    if mine.count() != messages + stored:
        raise CommandError("messages appeared or vanished")


def _pages(server: Server, tenant: Tenant, samples: int) -> dict[str, dict]:
    """The message log and the dashboard through the server (DEBUG off, as deployed), signed
    in as the tenant's admin with a session made here."""
    user = get_user_model().objects.create_user(username=f"bench-{secrets.token_hex(4)}", password=None)
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.ADMIN)
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    log_url = reverse("message_list", kwargs={"tenant_slug": tenant.slug})
    dashboard = reverse("tenant_dashboard", kwargs={"tenant_slug": tenant.slug})
    try:
        body = page_get(server, log_url, cookie=cookie)
        older = html.unescape(re.search(r'href="\?cursor=([^"]+)" rel="next"', body).group(1))
        figures = time_pages(
            server,
            {
                "log first page": log_url,
                "log filtered": f"{log_url}?status=undelivered",
                "log next page": f"{log_url}?cursor={older}",
                "dashboard 24h": f"{dashboard}?range=24h",
                "dashboard 30d": f"{dashboard}?range=30d",
            },
            cookie=cookie,
            samples=samples,
        )
        return figures
    finally:
        user.delete()


def _cleanup(tenant: Tenant) -> None:
    # One DELETE per table, not the ORM's collector (which loads every row to cascade).
    with connection.cursor() as cursor:
        for model in (MessageEvent, MessageHourly, Message):
            cursor.execute(
                f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)} WHERE tenant_id = %s", [tenant.pk]
            )
    WebhookRejection.objects.filter(tenant=tenant).delete()
    AuditEvent.objects.filter(tenant=tenant).delete()
    tenant.delete()


def refuse_unless_scratch_database() -> None:
    """The benchmark creates and deletes a tenant and millions of rows, and deletes its audit
    rows (append-only everywhere else): never on a database that matters."""
    name = Path(str(settings.DATABASES["default"]["NAME"])).name
    if not ("bench" in name or "test" in name):
        raise CommandError(
            f"Refusing to benchmark on database {name!r}: use a scratch database whose name contains "
            "'bench' (or 'test'), or pass --allow-any-database."
        )


def run_benchmark(
    *, messages: int, prepared: int, seconds: float, connections: int, workers: int, threads: int, log=print
) -> dict:
    if connection.vendor != "postgresql":
        raise CommandError("bench_webhooks measures PostgreSQL: set DATABASE_URL to a scratch database.")
    token, prefix = secrets.token_hex(16), secrets.token_hex(4)
    tenant = Tenant.objects.create(
        slug=f"bench-webhooks-{prefix}",
        name="Webhook benchmark",
        account_sid="AC" + secrets.token_hex(16),
        auth_token=token,
    )
    scratch = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    server = None
    try:
        log(f"seeding {messages:,} messages…")
        started = time.perf_counter()
        _seed(tenant, messages, prefix, prepared)
        log(f"seeded in {time.perf_counter() - started:.0f} s; starting gunicorn…")
        server = Server(scratch, workers=workers, threads=threads)
        batches = _requests(tenant, token, server.base_url, prefix, prepared)
        drive(server, batches["bare"], scratch, seconds=2, connections=connections)  # warm every worker
        started_at = timezone.now()
        figures = {}
        for name, batch in batches.items():
            log(f"{name}: {seconds:g} s…")
            figures[name] = drive(server, batch, scratch, seconds=seconds, connections=connections)
            log(f"  {figures[name]}")
            want_refused = name == "rejected"
            if figures[name]["refused"] != (figures[name]["requests"] if want_refused else 0):
                raise CommandError(f"{name}: unexpected answers {figures[name]}")
            if name in ("status", "inbound") and figures[name]["requests"] > len(batch):
                # The load generator went round the list again: repeats would be measured (and
                # fail the effects' check) instead of new callbacks and texts.
                raise CommandError(
                    f"{name}: {figures[name]['requests']:,} requests in {seconds:g} s but only {len(batch):,} "
                    "prepared: raise --prepared (or shorten --seconds)."
                )
        log("recounting the hourly rollups (the periodic task's first run: every hour)…")
        started = time.perf_counter()
        message_hourly_recount()
        recount_seconds = time.perf_counter() - started
        started = time.perf_counter()
        message_hourly_recount()  # as every 5 minutes: the last 72 hours
        log(f"first recount {recount_seconds:.1f} s, periodic recount {time.perf_counter() - started:.1f} s")
        log("timing pages…")
        pages = _pages(server, tenant, PAGE_SAMPLES)
        server.stop()
        server = None
        log(f"streaming the CSV export of the last {EXPORT_DAYS} days…")
        since = (timezone.now() - timedelta(days=EXPORT_DAYS)).date()
        export = export_stream(tenant, trace=False, params={"created_from": since.isoformat()})
        _check_effects(
            tenant,
            prefix,
            figures,
            prepared=prepared,
            messages=messages,
            started_at=started_at,
            connections=connections,
        )
        for phase in figures.values():
            phase["vs_bare"] = round(phase["per_second"] / figures["bare"]["per_second"], 2)
        return {"phases": figures, "pages": pages, "export": export, "client": figures["bare"]["client"]}
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        _cleanup(tenant)


class Command(BaseCommand):
    help = "The speed table: webhook intake against a bare view under gunicorn, pages at millions of messages."

    def add_arguments(self, parser):
        parser.add_argument("--messages", type=int, default=2_000_000, help="Messages seeded in the tenant.")
        parser.add_argument(
            "--prepared", type=int, default=PREPARED, help="Signed requests per phase (callback targets)."
        )
        parser.add_argument("--seconds", type=float, default=10, help="Seconds per webhook phase.")
        parser.add_argument("--connections", type=int, default=16, help="Keep-alive client connections.")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn gthread worker processes.")
        parser.add_argument("--threads", type=int, default=8, help="Threads per gunicorn worker.")
        parser.add_argument("--allow-any-database", action="store_true", help="Run on a database of any name.")

    def handle(self, *args, **options):
        if not 10 <= options["prepared"] <= options["messages"]:
            raise CommandError("--prepared must be at least 10 and at most --messages.")
        if not options["allow_any_database"]:
            refuse_unless_scratch_database()
        result = run_benchmark(
            messages=options["messages"],
            prepared=options["prepared"],
            seconds=options["seconds"],
            connections=options["connections"],
            workers=options["workers"],
            threads=options["threads"],
            log=lambda text: self.stderr.write(text),
        )
        self.stdout.write(
            f"PostgreSQL, {options['messages']:,} messages in the tenant; gunicorn gthread "
            f"{options['workers']} workers x {options['threads']} threads; {result['client']}, "
            f"{options['connections']} keep-alive connections, {options['seconds']:g} s per phase"
        )
        self.stdout.write(f"{'what':<16}{'req/s':>9}{'vs bare':>9}{'p50 ms':>9}{'p99 ms':>9}  goal")
        for name, f in result["phases"].items():
            self.stdout.write(
                f"{name:<16}{f['per_second']:>9,.0f}{f['vs_bare']:>9.2f}{f['p50_ms']:>9.1f}{f['p99_ms']:>9.1f}"
                f"  {GOALS.get(name, '')}"
            )
        for name, f in result["pages"].items():
            self.stdout.write(f"{name:<16}{'':>9}{'':>9}{f['p50_ms']:>9.1f}{f['p99_ms']:>9.1f}  {GOALS[name]}")
        e = result["export"]
        self.stdout.write(
            f"{'export':<16}{e['rows_per_second']:>9,}  rows/s: {e['rows']:,} rows in {e['seconds']} s, "
            f"peak RSS growth {e['rss_growth_mib']} MiB  {GOALS['export']}"
        )
