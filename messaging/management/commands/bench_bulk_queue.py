"""`bench_bulk_queue [--recipients 100000] [--naive-sample 500] [--keep]`: how fast a bulk send is
gated and queued.

Builds a throw-away tenant whose ledgers look lived-in (marketing consent for 90% of the
recipients, 2% opted out, 1% at their frequency cap), uploads the recipients as a draft bulk
send and times `bulk_queue` — the launch path: render every row, one batched gate check
(`gate_evaluate`), multi-row inserts. The same is then done the naive way for a small sample,
one `message_send` (gate + INSERT) per recipient, to report the ratio. Queries are counted for
both. Everything it created is deleted afterwards unless --keep.

Run it on PostgreSQL for figures worth quoting:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/commsportal_bench manage.py migrate
    DATABASE_URL=... manage.py bench_bulk_queue --recipients 100000
"""

from __future__ import annotations

import secrets
import time
from contextlib import contextmanager
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone

from messaging.delivery.bulk.lifecycle import bulk_queue
from messaging.delivery.bulk.upload import CsvUpload, bulk_draft_create
from messaging.delivery.queueing import message_send
from messaging.delivery.templating import template_parse
from messaging.models import (
    BulkSend,
    ConsentEvent,
    Message,
    MessageEvent,
    MessageTemplate,
    OptOutEvent,
    Purpose,
    SendingPolicy,
)
from tenants.audit import SYSTEM
from tenants.models import AuditEvent, Tenant

AREA_CODES = ("212", "415", "305", "405", "208", "312", "617", "713")
SENDER = "+15005550006"
BODY = "Hi {{first_name}}, our spring sale starts {{day}}: 20% off with code {{code}}. Reply STOP to opt out."


def numbers(count: int, *, offset: int = 0) -> list[str]:
    """Distinct valid US numbers spread over several states and time zones."""
    n = len(AREA_CODES)
    return [f"+1{AREA_CODES[i % n]}{2000000 + offset + i // n}" for i in range(count)]


@contextmanager
def counting_queries():
    counter = {"queries": 0}

    def wrapper(execute, sql, params, many, context):
        counter["queries"] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield counter


def _seed(tenant: Tenant, phones: list[str]) -> None:
    now = timezone.now()
    ConsentEvent.objects.bulk_create(
        [
            ConsentEvent(
                tenant=tenant,
                phone=p,
                purpose=Purpose.MARKETING,
                action=ConsentEvent.Action.GRANTED,
                method=ConsentEvent.Method.WEB_FORM,
                captured_at=now - timedelta(days=30),
            )
            for i, p in enumerate(phones)
            if i % 10
        ],
        batch_size=2000,
    )
    OptOutEvent.objects.bulk_create(
        [
            OptOutEvent(tenant=tenant, phone=p, action="opt_out", source="import", created_at=now - timedelta(days=1))
            for i, p in enumerate(phones)
            if i % 50 == 1
        ],
        batch_size=2000,
    )
    capped = [p for i, p in enumerate(phones) if i % 100 == 3]
    Message.objects.bulk_create(
        [
            Message(
                tenant=tenant,
                direction="outbound",
                from_number=SENDER,
                to_number=p,
                body="Earlier",
                purpose=Purpose.MARKETING,
                status="delivered",
                gate_decision="send",
                accepted_at=now - timedelta(hours=2 + k),
            )
            for p in capped
            for k in range(3)
        ],
        batch_size=2000,
    )


def _cleanup(tenant: Tenant) -> None:
    # Ledger rows are append-only for the ORM's instances; a benchmark tenant goes whole.
    MessageEvent.all_tenants.filter(tenant=tenant).delete()
    Message.all_tenants.filter(tenant=tenant).delete()
    BulkSend.all_tenants.filter(tenant=tenant).delete()
    MessageTemplate.all_tenants.filter(tenant=tenant).delete()
    ConsentEvent.all_tenants.filter(tenant=tenant).delete()
    OptOutEvent.all_tenants.filter(tenant=tenant).delete()
    SendingPolicy.objects.filter(tenant=tenant).delete()
    AuditEvent.objects.filter(tenant=tenant).delete()
    tenant.delete()


def run_benchmark(*, recipients: int, naive_sample: int, keep: bool = False, log=print) -> dict:
    """Time the batched launch path and the naive per-recipient path; returns the figures."""
    tenant = Tenant.objects.create(
        slug=f"bench-{secrets.token_hex(4)}",
        name="Bulk benchmark",
        account_sid="AC" + secrets.token_hex(16),
        auth_token=secrets.token_hex(16),
    )
    try:
        main = numbers(recipients)
        sample = numbers(naive_sample, offset=5_000_000)
        log(f"seeding ledgers for {recipients + naive_sample:,} numbers…")
        _seed(tenant, main + sample)
        template = MessageTemplate.objects.create(tenant=tenant, name="Spring", purpose=Purpose.MARKETING, body=BODY)
        upload = CsvUpload(body=BODY, variables=["first_name", "day", "code"])
        upload.recipients = [[p, [f"Name{i}", "Friday", f"SPRING{i % 997}"]] for i, p in enumerate(main)]
        draft = bulk_draft_create(
            tenant=tenant,
            name="bench",
            template=template,
            purpose=Purpose.MARKETING,
            sender=SENDER,
            upload=upload,
            audit=SYSTEM,
        )
        # Launched but paused: queueing runs in full, and no dispatcher task is published.
        BulkSend.objects.for_tenant(tenant).filter(pk=draft.pk).update(status=BulkSend.Status.PAUSED)

        log(f"batched: gating and queueing {recipients:,} recipients…")
        with counting_queries() as batched_q:
            started = time.perf_counter()
            counts = bulk_queue(bulk_id=draft.pk)
            batched_s = time.perf_counter() - started
        assert counts["total"] == recipients, counts

        naive_bulk = BulkSend.objects.create(
            tenant=tenant, name="naive", template=template, purpose=Purpose.MARKETING, sender=SENDER, status="paused"
        )
        parsed = template_parse(BODY)
        log(f"naive: one gate check and one INSERT per recipient, {naive_sample:,} recipients…")
        with counting_queries() as naive_q:
            started = time.perf_counter()
            for i, phone in enumerate(sample):
                body = parsed.render({"first_name": f"Name{i}", "day": "Friday", "code": f"SPRING{i % 997}"})
                message_send(
                    tenant=tenant, to=phone, body=body, purpose=Purpose.MARKETING, sender=SENDER, bulk_send=naive_bulk
                )
            naive_s = time.perf_counter() - started
        figures = {
            "vendor": connection.vendor,
            "recipients": recipients,
            "batched_seconds": round(batched_s, 3),
            "batched_per_second": round(recipients / batched_s),
            "batched_queries": batched_q["queries"],
            "naive_sample": naive_sample,
            "naive_per_second": round(naive_sample / naive_s),
            "naive_queries_per_recipient": round(naive_q["queries"] / naive_sample, 1),
            "counts": counts,
        }
        figures["ratio"] = round(figures["batched_per_second"] / figures["naive_per_second"], 1)
        return figures
    finally:
        if not keep:
            _cleanup(tenant)


class Command(BaseCommand):
    help = "Benchmark gating and queueing a bulk send (batched) against a per-recipient loop."

    def add_arguments(self, parser):
        parser.add_argument("--recipients", type=int, default=100_000)
        parser.add_argument("--naive-sample", type=int, default=500)
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark tenant and its rows.")

    def handle(self, *args, **options):
        figures = run_benchmark(
            recipients=options["recipients"],
            naive_sample=options["naive_sample"],
            keep=options["keep"],
            log=lambda text: self.stderr.write(text),
        )
        c = figures["counts"]
        self.stdout.write(
            f"database:  {figures['vendor']}\n"
            f"batched:   {figures['recipients']:,} recipients in {figures['batched_seconds']:.2f} s = "
            f"{figures['batched_per_second']:,} recipients/s, {figures['batched_queries']} queries in all\n"
            f"           send {c.get('send', 0):,} · defer {c.get('defer', 0):,} · block {c.get('block', 0):,} "
            f"({', '.join(f'{k} {v:,}' for k, v in c.items() if k not in ('total', 'send', 'defer', 'block'))})\n"
            f"naive:     {figures['naive_sample']:,} recipients at {figures['naive_per_second']:,} recipients/s, "
            f"{figures['naive_queries_per_recipient']} queries per recipient\n"
            f"ratio:     batched is {figures['ratio']}x the per-recipient loop"
        )
