"""THE KILL TEST: a worker that dies after Twilio accepted a message but before the portal saved
its SID must not cause a second send when the task runs again.

Done for real, not simulated: delivery runs in another OS process (a plain child process, and
a real Celery worker on Redis) whose Twilio client talks HTTP to the local sandbox. Those
processes start through `tests/messaging/twilio_kill.py`, which wraps the Twilio SDK's HTTP
client: armed by a kill file, the process SIGKILLs itself as soon as Twilio answered 201 to the
Messages create. Then delivery runs again, as the redelivered task would, and must find the
message at Twilio (reconciliation) instead of sending it again.

The child processes use the test database: PostgreSQL's by name; SQLite's in-memory one is
copied to a file for them and copied back afterwards (sqlite3's backup API).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection
from django.utils import timezone

from messaging.models import Message
from tests.conftest import redis_required
from tests.messaging.sending_support import NY, SENDER, reload, sandbox_messages

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LEASE_SECONDS = 2
CODE = "Your Acme code is 771204"

# Worker processes run through the test-only entry module that kills them after Twilio's 201.
ENTRY = [sys.executable, "-m", "tests.messaging.twilio_kill"]


class SharedDatabase:
    """The test database as other processes can open it."""

    def __init__(self, tmp_path: Path) -> None:
        self.vendor = connection.vendor
        self.path = tmp_path / "shared.sqlite3"

    @property
    def url(self) -> str:
        if self.vendor == "sqlite":
            return f"sqlite:///{self.path}"
        db = connection.settings_dict
        credentials = quote(db["USER"] or "", safe="")
        if db["PASSWORD"]:
            credentials += ":" + quote(db["PASSWORD"], safe="")
        return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"

    def share(self) -> None:
        """Make what this process committed visible to the others."""
        if self.vendor == "sqlite":
            connection.ensure_connection()
            target = sqlite3.connect(self.path)
            connection.connection.backup(target)
            target.close()

    def take_back(self) -> None:
        """Make what the others wrote visible to this process."""
        if self.vendor == "sqlite":
            source = sqlite3.connect(self.path, timeout=10)
            source.backup(connection.connection)
            source.close()

    def message_field(self, message_id: int, name: str):
        """One field of the row as the other processes left it (polled while they run)."""
        if self.vendor != "sqlite":
            return Message.all_tenants.filter(pk=message_id).values_list(name, flat=True).first()
        field = Message._meta.get_field(name)
        with sqlite3.connect(self.path, timeout=10) as db:
            row = db.execute(
                f"SELECT {field.column} FROM {Message._meta.db_table} WHERE id = ?", [message_id]
            ).fetchone()
        value = field.to_python(row[0]) if row else None
        if isinstance(value, datetime) and timezone.is_naive(value):
            value = value.replace(tzinfo=UTC)  # SQLite stores UTC without an offset
        return value

    def message_sid(self, message_id: int) -> str | None:
        return self.message_field(message_id, "sid")


@pytest.fixture
def shared_db(tmp_path) -> SharedDatabase:
    if connection.vendor not in ("sqlite", "postgresql"):
        pytest.skip(f"no way to share a {connection.vendor} test database with a child process")
    return SharedDatabase(tmp_path)


@pytest.fixture
def kill_file(tmp_path) -> Path:
    """Arms the fault: the next delivery Twilio accepts kills its process (twilio_kill.py)."""
    path = tmp_path / "kill-after-twilio-create"
    path.write_text("armed")
    return path


def child_env(shared_db: SharedDatabase, sandbox, kill_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(
        DJANGO_SETTINGS_MODULE="commsportal.settings",
        ENV_FILE="",  # no .env file: only what this test sets
        PYTHONPATH=str(settings.BASE_DIR),
        DATABASE_URL=shared_db.url,
        TWILIO_API_BASE_URL=sandbox.base_url,
        PUBLIC_BASE_URL="http://127.0.0.1:9",
        TWILIO_KILL_FILE=str(kill_file),
        MESSAGING_SEND_LEASE_SECONDS=str(LEASE_SECONDS),
        CONN_MAX_AGE="0",
    )
    env.update(extra)
    return env


def queued_otp(tenant) -> Message:
    """A message `message_send` queued (pending, gate said send) whose task is about to run."""
    now = timezone.now()
    return Message.objects.create(
        tenant=tenant,
        direction="outbound",
        to_number=NY,
        from_number=SENDER,
        body=CODE,
        purpose="otp",
        status="pending",
        status_updated_at=now,
        gate_decision="send",
        send_after=now,
    )


def deliver_in_child(message_id: int, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*ENTRY, "deliver", str(message_id)],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def outcome(process: subprocess.CompletedProcess) -> dict:
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_child_killed_after_twilio_accepted_then_redelivery_sends_nothing_more(
    twilio_tenant, sandbox, shared_db, kill_file
):
    message = queued_otp(twilio_tenant)
    shared_db.share()
    env = child_env(shared_db, sandbox, kill_file)

    # The dying worker's lease must outlast the next child's start-up (seconds on a busy machine).
    killed = deliver_in_child(message.pk, {**env, "MESSAGING_SEND_LEASE_SECONDS": "15"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not kill_file.exists()  # the fault fired once
    at_twilio = sandbox_messages(sandbox, NY)
    assert len(at_twilio) == 1  # Twilio accepted it ...
    assert shared_db.message_sid(message.pk) is None  # ... and the portal never saved the SID

    # Redelivered at once: the dead worker's lease is still running, so nothing is sent.
    assert outcome(deliver_in_child(message.pk, env)) == {"outcome": "leased"}
    lease_end = shared_db.message_field(message.pk, "send_claimed_until")
    time.sleep(max(0.0, (lease_end - timezone.now()).total_seconds()) + 0.2)
    # Once the lease has run out, the next run finds the message at Twilio.
    assert outcome(deliver_in_child(message.pk, env)) == {"outcome": "reconciled"}
    assert outcome(deliver_in_child(message.pk, env)) == {"outcome": "done"}

    shared_db.take_back()
    [now_at_twilio] = sandbox_messages(sandbox, NY)
    message = reload(message)
    assert message.sid == at_twilio[0]["sid"]
    # Reconciliation takes the status Twilio reports by then (callbacks went to a closed port).
    assert (message.status, message.send_attempts, message.send_claim) == (now_at_twilio["status"], 1, "")
    assert message.accepted_at is not None


def test_without_the_fault_the_child_sends_normally(twilio_tenant, sandbox, shared_db, tmp_path):
    message = queued_otp(twilio_tenant)
    shared_db.share()
    env = child_env(shared_db, sandbox, tmp_path / "not-armed")
    assert outcome(deliver_in_child(message.pk, env)) == {"outcome": "sent"}
    shared_db.take_back()
    assert reload(message).sid == sandbox_messages(sandbox, NY)[0]["sid"]


# --- a real Celery worker on Redis ----------------------------------------------------------------


def redis_broker_url() -> str:
    configured = os.environ.get("CELERY_BROKER_URL", "")
    return configured if configured.startswith("redis://") else "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_url() -> str:
    url = redis_broker_url()
    return redis_required(url)


@pytest.fixture
def celery_worker(tmp_path):
    started: list[tuple[subprocess.Popen, object]] = []

    def start(queue: str, env: dict[str, str]) -> Path:
        log = tmp_path / f"worker-{queue}.log"
        handle = log.open("wb")
        process = subprocess.Popen(
            ENTRY
            + [
                "celery",
                "-A",
                "commsportal",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "-Q",
                queue,
                "-n",
                f"{queue}@%h",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "info",
            ],  # fmt: skip
            env=env,
            cwd=settings.BASE_DIR,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append((process, handle))
        return log

    yield start
    for process, handle in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        handle.close()


def test_real_celery_worker_killed_mid_send_redelivers_and_sends_once(
    twilio_tenant, sandbox, shared_db, kill_file, redis_url, celery_worker
):
    message = queued_otp(twilio_tenant)
    shared_db.share()
    queue = f"test-kill-{uuid.uuid4().hex[:12]}"
    log = celery_worker(queue, child_env(shared_db, sandbox, kill_file, CELERY_BROKER_URL=redis_url))

    sender = Celery("kill-test-sender", broker=redis_url, set_as_current=False)
    try:
        sender.send_task("messaging.tasks.message_deliver_task", args=[message.pk], queue=queue)
    finally:
        sender.close()

    deadline = time.monotonic() + 90
    while shared_db.message_sid(message.pk) is None:
        output = log.read_text(errors="replace")
        assert time.monotonic() < deadline, f"no SID within 90 s; worker log:\n{output}"
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while "succeeded" not in (output := log.read_text(errors="replace")) and time.monotonic() < deadline:
        time.sleep(0.1)

    assert not kill_file.exists()
    # The pool process died by SIGKILL; acks_late + reject_on_worker_lost put the task back.
    assert "WorkerLostError" in output or "signal 9" in output, output
    assert "'reconciled'" in output, output
    shared_db.take_back()
    at_twilio = sandbox_messages(sandbox, NY)
    assert len(at_twilio) == 1
    message = reload(message)
    assert message.sid == at_twilio[0]["sid"] and message.send_attempts == 1
