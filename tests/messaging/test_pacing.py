"""Pacing holds across processes: 4 workers hammering one key against the real Redis."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid

import pytest

from messaging.delivery.pacing import pacing_acquire, pacing_key, pacing_reserve
from tests.conftest import redis_required
from tests.messaging.pacing_worker import hammer

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_url():
    return redis_required(REDIS_URL)


def _rate(times: list[float]) -> float:
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0])


@pytest.mark.slow
@pytest.mark.services
def test_four_processes_share_one_rate(redis_url):
    rate, seconds, workers = 20.0, 3.0, 4
    key = f"test:pacing:{uuid.uuid4().hex}"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 2.0  # spawned interpreters need a moment to import
    procs = [ctx.Process(target=hammer, args=(redis_url, key, rate, start_at, seconds, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    per_worker = [queue.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    grants = [t for times in per_worker for t in times]
    assert all(per_worker), "every worker got slots (nobody starved)"
    measured = _rate(grants)
    assert abs(measured - rate) / rate < 0.05, f"aggregate {measured:.2f}/s for a limit of {rate}/s"
    # Nor does the total exceed what the window allows (+1 for the slot granted at t=0).
    assert len(grants) <= rate * seconds + 1


@pytest.mark.services
def test_timeout_refuses_without_spending(redis_url):
    key = f"test:pacing:{uuid.uuid4().hex}"
    assert pacing_acquire(key=key, rate=1, timeout=0, url=redis_url)
    assert not pacing_acquire(key=key, rate=1, timeout=0, url=redis_url)  # next slot is ~1 s away
    wait = pacing_reserve(key=key, rate=1, max_wait=5, url=redis_url)
    assert wait is not None and 0.5 < wait <= 1.0  # the refused call reserved nothing


@pytest.mark.services
def test_burst_allows_back_to_back_after_idle(redis_url):
    key = f"test:pacing:{uuid.uuid4().hex}"
    assert all(pacing_acquire(key=key, rate=1, burst=3, timeout=0, url=redis_url) for _ in range(3))
    assert not pacing_acquire(key=key, rate=1, burst=3, timeout=0, url=redis_url)


def test_in_process_fallback_paces_threads():
    """Embedded demo (no REDIS_URL): the same algorithm, shared by this process's threads."""
    key = f"test:local:{uuid.uuid4().hex}"
    grants: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + 1.0

    def run():
        while (remaining := stop - time.monotonic()) > 0:
            if pacing_acquire(key=key, rate=50, timeout=remaining, url=""):
                with lock:
                    grants.append(time.monotonic())

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert abs(_rate(grants) - 50) / 50 < 0.05


def test_key_names_tenant_and_sender():
    assert pacing_key(tenant_id=7, sender="+14155550100") == "commsportal:pacing:7:+14155550100"
    with pytest.raises(ValueError):
        pacing_acquire(key="k", rate=0, url="")
