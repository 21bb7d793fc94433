"""A real Celery worker process runs `commsportal.ping` end to end: on Redis (the production
broker) and on the embedded filesystem broker the development default uses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

from tests.conftest import redis_required

pytestmark = pytest.mark.slow

CELERY = Path(sys.executable).with_name("celery")


def worker_command(queue: str) -> list[str]:
    program = [str(CELERY)] if CELERY.exists() else [sys.executable, "-m", "celery"]
    return program + [
        "-A", "commsportal", "worker",
        "--pool=solo", "--concurrency=1", "-Q", queue, "-n", f"{queue}@%h",
        "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "info",
    ]  # fmt: skip


def clean_env(**overrides: str | None) -> dict[str, str]:
    """This process's environment minus broker settings and any .env file, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(DJANGO_SETTINGS_MODULE="commsportal.settings", ENV_FILE="", PYTHONPATH=str(settings.BASE_DIR))
    env.update({k: v for k, v in overrides.items() if v is not None})
    return env


class Worker:
    def __init__(self, queue: str, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            worker_command(queue), env=env, cwd=cwd, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Idempotent: the fixture's finalizer calls it again."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log_file.close()


@pytest.fixture
def start_worker(tmp_path):
    workers: list[Worker] = []

    def start(queue: str, env: dict[str, str], cwd: Path | None = None) -> Worker:
        worker = Worker(queue, env, cwd or tmp_path, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for_result(result, worker: Worker, timeout: float = 30.0):
    """`result.get()`, but fail at once (with the worker's log) if the worker died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result.ready():
            return result.get(timeout=1)
        assert worker.process.poll() is None, f"worker exited:\n{worker.output()}"
        time.sleep(0.1)
    raise AssertionError(f"no result within {timeout} s; worker log:\n{worker.output()}")


def redis_broker_url() -> str:
    configured = os.environ.get("CELERY_BROKER_URL", "")
    return configured if configured.startswith("redis://") else "redis://127.0.0.1:6379/15"


def test_worker_round_trips_ping_over_redis(start_worker):
    url = redis_broker_url()
    redis_required(url)
    queue = f"test-ping-{uuid.uuid4().hex[:12]}"
    worker = start_worker(queue, clean_env(CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND=url))

    sender = Celery("ping-sender", broker=url, backend=url, set_as_current=False)
    payload = f"ping-{uuid.uuid4()}"
    try:
        result = sender.send_task("commsportal.ping", args=[payload], queue=queue)
        assert wait_for_result(result, worker) == payload
        assert result.status == "SUCCESS"
        result.forget()
    finally:
        sender.close()
        worker.stop()
        forget_queue(url, queue)
    assert f"Task commsportal.ping[{result.id}] succeeded" in worker.output()


def forget_queue(url: str, queue: str) -> None:
    """kombu keeps a queue's binding keys forever: drop this test's, the Redis DB is shared."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"*{queue}*"):
            client.delete(key)
    finally:
        client.close()


# The sender also uses the project's own settings, so both ends really take the default broker.
SEND_WITH_PROJECT_SETTINGS = """
import json, os, sys, django
django.setup()
from django.conf import settings
from commsportal.celery import app
queue, payload = sys.argv[1:3]
result = app.send_task("commsportal.ping", args=[payload], queue=queue)
print(json.dumps({"broker": settings.CELERY_BROKER_URL, "result": result.get(timeout=30)}))
"""


def test_worker_round_trips_ping_over_embedded_filesystem_broker(start_worker, tmp_path):
    import json

    broker_dir = tmp_path / "broker"  # not created by the test: settings must create it
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = clean_env(
        CELERY_FILESYSTEM_BROKER_DIR=str(broker_dir),
        CELERY_RESULT_BACKEND=f"file://{results_dir}",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    assert "CELERY_BROKER_URL" not in env
    queue = f"test-ping-{uuid.uuid4().hex[:12]}"
    worker = start_worker(queue, env, cwd=cwd)
    payload = f"ping-{uuid.uuid4()}"

    sender = subprocess.run(
        [sys.executable, "-c", SEND_WITH_PROJECT_SETTINGS, queue, payload],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sender.returncode == 0, f"{sender.stderr}\nworker log:\n{worker.output()}"
    assert json.loads(sender.stdout.strip().splitlines()[-1]) == {"broker": "filesystem://", "result": payload}
    assert "Task commsportal.ping[" in worker.output()

    assert {p.name for p in broker_dir.iterdir()} >= {"queue", "processed", "control"}
    assert list((broker_dir / "queue").glob(f"*.{queue}.msg")) == []  # consumed
    # kombu's control folder defaults to ./control: it must stay under the broker folder.
    assert not (cwd / "control").exists()
