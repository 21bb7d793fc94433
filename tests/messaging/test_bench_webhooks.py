"""`manage.py bench_webhooks` runs the whole speed table end to end (seeding, gunicorn, the
load generator, effects checked, pages timed) on a PostgreSQL database of its own, and reports
every row against the bare view."""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import services_required
from tests.stack import Stack

pytestmark = pytest.mark.slow


def test_bench_webhooks_reports_each_row_against_the_bare_view(tmp_path):
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        if services_required():
            pytest.fail("REQUIRE_SERVICES=1 but DATABASE_URL is not PostgreSQL")
        pytest.skip("bench_webhooks measures PostgreSQL")
    stack = Stack(tmp_path, name="bench")
    try:
        stack.manage("migrate", "--noinput")
        # Prepared requests enough for 1 s at 8,000/s: a phase never goes round its list again.
        args = ["--messages", "10000", "--prepared", "8000", "--seconds", "1", "--connections", "4"]
        out = stack.manage("bench_webhooks", *args, "--workers", "1", "--threads", "4", timeout=600)
        phases = dict(re.findall(r"^(bare|bare-lane|status|inbound|rejected)\s+[\d,.]+\s+([\d.]+)\s", out, flags=re.M))
        assert set(phases) == {"bare", "bare-lane", "status", "inbound", "rejected"}, out
        assert float(phases["bare"]) == 1.0
        assert all(float(ratio) > 0 for ratio in phases.values()), out
        pages = re.findall(
            r"^(log first page|log filtered|log next page|dashboard 24h|dashboard 30d)\s+[\d.]+", out, re.M
        )
        assert len(pages) == 5, out
        export = re.search(r"^export\s+([\d,]+)\s+rows/s: ([\d,]+) rows", out, re.M)
        assert export and int(export.group(2).replace(",", "")) > 0, out
        # Nothing of the benchmark is left behind.
        left = stack.manage(
            "shell",
            "-c",
            "from tenants.models import Tenant; from messaging.models import Message; "
            "print(Tenant.objects.count() + Message.all_tenants.count())",
        )
        assert left.strip().splitlines()[-1] == "0"
    finally:
        stack.stop()
