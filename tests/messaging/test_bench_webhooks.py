"""`manage.py bench_webhooks` runs end to end (gunicorn, signed webhooks, effects checked) on a
database of its own, and reports every phase against the bare view."""

from __future__ import annotations

import re

import pytest

from tests.stack import Stack

pytestmark = pytest.mark.slow


def test_bench_webhooks_reports_each_phase_against_the_bare_view(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.manage("migrate", "--noinput")
        # A database whose name doesn't say "bench" is refused unless asked for explicitly.
        with pytest.raises(AssertionError, match="Refusing to benchmark on database"):
            stack.manage("bench_webhooks", "--requests", "30")
        out = stack.manage(
            "bench_webhooks", "--requests", "30", "--concurrency", "2", "--workers", "1", "--allow-any-database"
        )
        rows = dict(re.findall(r"^(bare|status|inbound|rejected)\s+[\d,.]+\s+([\d.]+)", out, flags=re.M))
        assert set(rows) == {"bare", "status", "inbound", "rejected"}, out
        assert float(rows["bare"]) == 1.0
        assert all(float(ratio) > 0 for ratio in rows.values()), out
        # Nothing of the benchmark is left behind.
        left = stack.manage("shell", "-c", "from tenants.models import Tenant; print(Tenant.objects.count())")
        assert left.strip().splitlines()[-1] == "0"
    finally:
        stack.stop()
