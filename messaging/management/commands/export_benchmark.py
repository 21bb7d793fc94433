"""`export_benchmark [--messages 500000] [--no-tracemalloc] [--keep]`: how fast, and in how
little memory, the message log's CSV export streams.

Seeds a throw-away tenant with N messages set-based (one `INSERT … SELECT generate_series` on
PostgreSQL, batched `bulk_create` elsewhere), then consumes the real export view's streaming
response as a client would and prints rows, seconds, rows/s and the memory it took: peak RSS
growth of the process, and (a second pass, slower) tracemalloc's peak of Python allocations.
Everything it created is deleted afterwards unless --keep.

Run it on PostgreSQL for figures worth quoting:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_exports manage.py migrate
    DATABASE_URL=... manage.py export_benchmark --messages 500000
"""

from __future__ import annotations

import resource
import secrets
import time
import tracemalloc
from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.core.management.base import BaseCommand
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import RequestFactory
from django.utils import timezone

from messaging.models import Message, MessageEvent
from messaging.views.exports import message_export
from tenants.models import AuditEvent, Tenant
from tenants.scoping import TenantAccess

SENDER = "+15005550006"
BATCH = 5000
#: Columns that vary per row: SQL over the series value `g` (PostgreSQL seeding; `mod()` rather
#: than `%`, which would clash with the parameter placeholders).
VARYING_SQL = {
    "sid": "'SM' || lpad(g::text, 32, '0')",
    "to_number": "'+1415' || lpad(mod(g, 10000000)::text, 7, '0')",
    "created_at": "%s::timestamptz - g * interval '1 second'",
    "status_updated_at": "%s::timestamptz - g * interval '1 second' + interval '5 seconds'",
    "error_code": "CASE WHEN mod(g, 20) = 0 THEN 30003 END",
    "status": "CASE WHEN mod(g, 20) = 0 THEN 'undelivered' ELSE 'delivered' END",
}
CONSTANTS = {"direction": "outbound", "from_number": SENDER, "body": "Your order shipped.", "num_segments": 1}


def seed_postgresql(tenant: Tenant, count: int, now, *, varying=VARYING_SQL, constants=CONSTANTS) -> None:
    """One INSERT … SELECT: every column the model has, `varying` as SQL over the series value
    `g` (`%s` there is `now`), the rest constants as parameters."""
    columns, expressions, params = [], [], []
    for field in Message._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.name in varying:
            expressions.append(varying[field.name])
            params += [now] * varying[field.name].count("%s")
            continue
        value = tenant.pk if field.name == "tenant" else constants.get(field.name, field.get_default())
        expressions.append("%s")
        params.append(field.get_db_prep_save(value, connection))
    sql = (
        f"INSERT INTO {connection.ops.quote_name(Message._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} "
        "FROM generate_series(1, %s) AS g"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, count])


def _seed_batched(tenant: Tenant, count: int, now) -> None:
    for start in range(0, count, BATCH):
        Message.objects.bulk_create(
            Message(
                tenant=tenant,
                sid=f"SM{g:032d}",
                to_number=f"+1415{g % 10_000_000:07d}",
                status="undelivered" if g % 20 == 0 else "delivered",
                error_code=30003 if g % 20 == 0 else None,
                status_updated_at=now - timedelta(seconds=g - 5),
                **CONSTANTS,
            )
            for g in range(start + 1, min(start + BATCH, count) + 1)
        )


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


def export_stream(tenant: Tenant, *, trace: bool, params: dict | None = None) -> dict:
    """Consume the real view's response chunk by chunk, as the server would (`params`: the
    export's filters, as the log page passes them)."""
    request = RequestFactory().get(f"/t/{tenant.slug}/messages/export.csv", params or {})
    request.tenant, request.tenant_access, request.user = tenant, TenantAccess("admin"), AnonymousUser()
    if trace:
        tracemalloc.start()
    rss_before, peak_before = _rss_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started, cpu_started = time.perf_counter(), time.process_time()
    response = message_export(request)
    assert isinstance(response, StreamingHttpResponse)
    lines = size = 0
    rss_peak = rss_before
    for n, chunk in enumerate(response.streaming_content):
        lines += chunk.count(b"\n")
        size += len(chunk)
        if n % 50 == 0:
            rss_peak = max(rss_peak, _rss_kib())
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    response.close()
    figures = {
        "rows": lines - 1,
        "bytes": size,
        "seconds": round(seconds, 2),
        "rows_per_second": round((lines - 1) / seconds),
        # This process's CPU only (the database formats the times in its own): on a busy machine
        # the wall clock also counts waiting for a core.
        "cpu_seconds": round(cpu_seconds, 2),
        "rows_per_cpu_second": round((lines - 1) / cpu_seconds),
        "rss_growth_mib": round((max(rss_peak, _rss_kib()) - rss_before) / 1024, 1),
        "maxrss_growth_mib": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024, 1),
    }
    if trace:
        figures["tracemalloc_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    return figures


def _cleanup(tenant: Tenant) -> None:
    # A benchmark tenant goes whole; its audit rows (the export's own) with it.
    MessageEvent.all_tenants.filter(tenant=tenant).delete()
    # One DELETE, not the ORM's collector (which loads every row to cascade): nothing else of a
    # benchmark tenant points at its messages.
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(Message._meta.db_table)
        cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant.pk])
    AuditEvent.objects.filter(tenant=tenant).delete()
    tenant.delete()


def run_benchmark(*, messages: int, trace: bool = True, keep: bool = False, log=print) -> dict:
    """Seed, stream (timed), stream again under tracemalloc; returns the figures."""
    tenant = Tenant.objects.create(
        slug=f"bench-{secrets.token_hex(4)}",
        name="Export benchmark",
        account_sid="AC" + secrets.token_hex(16),
        auth_token=secrets.token_hex(16),
    )
    try:
        log(f"seeding {messages:,} messages ({connection.vendor})…")
        started = time.perf_counter()
        seed = seed_postgresql if connection.vendor == "postgresql" else _seed_batched
        seed(tenant, messages, timezone.now())
        log(f"seeded in {time.perf_counter() - started:.1f} s; streaming the export…")
        figures = {"vendor": connection.vendor, **export_stream(tenant, trace=False)}
        assert figures["rows"] == messages, figures
        if trace:
            log("streaming again under tracemalloc (slower; memory only)…")
            figures["tracemalloc_peak_mib"] = export_stream(tenant, trace=True)["tracemalloc_peak_mib"]
        return figures
    finally:
        if not keep:
            _cleanup(tenant)


class Command(BaseCommand):
    help = "Benchmark streaming the message log's CSV export: rows/s and memory growth."

    def add_arguments(self, parser):
        parser.add_argument("--messages", type=int, default=500_000)
        parser.add_argument("--no-tracemalloc", action="store_true", help="Skip the second, traced pass.")
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark tenant and its rows.")

    def handle(self, *args, messages, no_tracemalloc, keep, **options):
        figures = run_benchmark(
            messages=messages, trace=not no_tracemalloc, keep=keep, log=lambda m: self.stdout.write(m)
        )
        for key, value in figures.items():
            self.stdout.write(f"{key}: {value}")
