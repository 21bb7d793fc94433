"""A live deployment of the portal for tests that drive it from outside, every part its own
process as in production:

- the local Twilio sandbox (`manage.py twilio_sandbox`, its app enabled by SANDBOX_ENABLED beside
  the production settings), strict: unknown accounts are refused;
- the portal under gunicorn with DEBUG=False and the production settings;
- a Celery worker (prefork) on the broker CI gives us (Redis), or the embedded filesystem broker;
- a database of its own: a fresh PostgreSQL database when the suite runs on PostgreSQL, else a
  SQLite file, migrated by `manage.py migrate`.

Used by tests/test_end_to_end.py (a stack per test), tests/browser/ (one stack for the whole
browser suite) and the webhook benchmark; `Browser`, a signed-in user over plain HTTP, also by
tests/test_demo.py and tests/test_voice_end_to_end.py, which run `manage.py demo` (`Demo`).
Each user of it takes Redis databases of its own, because a stack's worker
takes every task it finds on its broker and a stack flushes its databases when it starts and
stops.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from cryptography.fernet import Fernet
from django.conf import settings

from tests.conftest import redis_reachable, services_required
from tests.verify.second_factor_helpers import fresh_totp_code

BASE_DIR = Path(settings.BASE_DIR)
BIN = Path(sys.executable).parent
# Every portal user a stack's tests create gets this password (read by `env:PORTAL_PASSWORD`).
PASSWORD = "stack-" + secrets.token_urlsafe(16)
STARTUP_SECONDS = 90
SECOND_FACTOR_PAGE = "/accounts/second-factor/verify/"
# (key, time step) pairs already used in this process: a code is accepted once.
USED_TOTP_CODES: set[tuple[str, int]] = set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


class Stack:
    """The processes and the environment they share; stops them all, drops its database.

    `name` goes into the PostgreSQL database's name; `redis_dbs` are (broker, cache) database
    numbers on the configured Redis (they may be the same one)."""

    def __init__(self, tmp_path: Path, *, name: str = "e2e", redis_dbs: tuple[int, int] = (11, 10)) -> None:
        self.tmp, self.name, self.redis_dbs = tmp_path, name, redis_dbs
        self.processes: list[tuple[str, subprocess.Popen, Path]] = []
        self.web_port, self.sandbox_port = free_port(), free_port()
        self.web = f"http://127.0.0.1:{self.web_port}"
        self.sandbox = f"http://127.0.0.1:{self.sandbox_port}"
        self.parent_sid, self.parent_token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
        self.pg_admin_url, self.pg_name, self.redis_url = None, None, None
        # username -> the base32 key of the authenticator app enrolled for them (`stack_enrol`).
        self.totp_secrets: dict[str, str] = {}
        try:
            self.env = self._environment()
        except BaseException:
            self.stop()  # a database created before the failure is dropped
            raise

    def _environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CELERY_", "DATABASE_", "REDIS_", "CACHE_", "TWILIO_", "PUBLIC_", "DJANGO_"))
        }
        # Services first: a failure here must not leave a database behind.
        broker = os.environ.get("CELERY_BROKER_URL", "")
        if broker.startswith("redis://") or services_required():
            if not redis_reachable(broker or None):
                pytest.fail(f"Redis at {broker or 'the default URL'} is unreachable")
            # Redis databases of its own: the worker takes every task it finds there.
            self.redis_url = _redis_db(broker or "redis://127.0.0.1:6379/0", self.redis_dbs[0])
            self._flush_redis()
            env.update(CELERY_BROKER_URL=self.redis_url, REDIS_URL=_redis_db(self.redis_url, self.redis_dbs[1]))
        else:
            env.update(
                CELERY_BROKER_URL="filesystem://",
                CELERY_FILESYSTEM_BROKER_DIR=str(self.tmp / "broker"),
                CACHE_URL=f"filecache://{self.tmp / 'cache'}",  # production settings want a named cache
            )
        env.update(
            DJANGO_SETTINGS_MODULE="commsportal.settings",
            PYTHONPATH=str(BASE_DIR),
            ENV_FILE="",
            DEBUG="False",
            SECURE_SSL_REDIRECT="False",  # plain http on 127.0.0.1: no TLS proxy in front
            SECRET_KEY=secrets.token_urlsafe(50),
            FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PUBLIC_BASE_URL=self.web,
            TWILIO_API_BASE_URL=self.sandbox,
            TWILIO_ACCOUNT_SID=self.parent_sid,
            TWILIO_AUTH_TOKEN=self.parent_token,
            DATABASE_URL=self._database(),
            PORTAL_PASSWORD=PASSWORD,
        )
        return env

    def _database(self) -> str:
        configured = os.environ.get("DATABASE_URL", "")
        if not configured.startswith(("postgres://", "postgresql://")):
            return f"sqlite:///{self.tmp / 'portal.sqlite3'}"
        import psycopg

        parts = urlsplit(configured)
        self.pg_name = f"commsportal_{self.name}_" + secrets.token_hex(4)
        self.pg_admin_url = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
        with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.pg_name}"')
        return urlunsplit((parts.scheme, parts.netloc, f"/{self.pg_name}", parts.query, ""))

    def _flush_redis(self) -> None:
        import redis

        for url in {self.redis_url, _redis_db(self.redis_url, self.redis_dbs[1])}:
            client = redis.Redis.from_url(url)
            client.flushdb()
            client.close()

    # --- processes ------------------------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def python(self, *argv: str, timeout: float = 300) -> str:
        """`python ARGV...` in the stack's environment (e.g. `-m module` or `-c code`); its stdout."""
        done = subprocess.run(
            [sys.executable, *argv], cwd=BASE_DIR, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"python {' '.join(argv)[:200]} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str, argv: list[str], **extra_env: str) -> None:
        log = self.tmp / f"{name}.log"
        handle = log.open("wb")
        process = subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env={**self.env, **extra_env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        self.processes.append((name, process, log))

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{log.read_text(errors='replace')[-6000:]}" for name, _, log in self.processes
        )

    def check_alive(self) -> None:
        for name, process, _ in self.processes:
            assert process.poll() is None, f"{name} exited with {process.returncode}\n{self.logs()}"

    def wait_until(self, what: str, probe, timeout: float = STARTUP_SECONDS):
        """`probe()` until it returns something truthy; fails with every process's log."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                value = probe()
            except requests.RequestException:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.3)

    def send_task(self, name: str) -> None:
        """Enqueue a task as beat does, through the project's own Celery configuration."""
        code = "import sys, django; django.setup(); from commsportal.celery import app; app.send_task(sys.argv[1])"
        self.python("-c", code, name, timeout=60)

    def stop(self) -> None:
        for _, process, _ in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _, process, _ in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if self.pg_name:
            import psycopg

            with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        if self.redis_url:
            self._flush_redis()


def stack_enrol(stack: Stack, username: str) -> str:
    """Enrol an authenticator app for `username` in the stack's database, as the demo does for its
    staff (`totp_device_provision`); its key is kept in `stack.totp_secrets` and returned."""
    code = (
        "import sys, django; django.setup(); from django.contrib.auth import get_user_model; "
        "from tenants.audit import SYSTEM; from verify.second_factor.services import totp_device_provision; "
        "user = get_user_model().objects.get(username=sys.argv[1]); "
        "print(totp_device_provision(user=user, audit=SYSTEM)[0])"
    )
    stack.totp_secrets[username] = stack.python("-c", code, username).strip()
    return stack.totp_secrets[username]


def sandbox_start(stack: Stack, *, wait: bool = True) -> None:
    """The local Twilio sandbox, strict (unknown accounts refused), on the stack's sandbox port."""
    stack.start(
        "sandbox",
        [sys.executable, "manage.py", "twilio_sandbox", "--port", str(stack.sandbox_port),
         "--callback-delay", "0.05", "--no-auto-register"],
        SANDBOX_ENABLED="True",  # production settings leave the sandbox app out
    )  # fmt: skip
    if wait:
        stack.wait_until("the sandbox", lambda: requests.get(f"{stack.sandbox}/sandbox/", timeout=2).ok)


def stack_start(stack: Stack) -> None:
    """Migrate, create the platform operator (`operator`, with an authenticator app: see
    `stack_enrol`), start the three processes and wait until each answers."""
    stack.manage("migrate", "--noinput")
    stack.manage("create_portal_user", "operator", "--superuser", "--password", "env:PORTAL_PASSWORD")
    stack_enrol(stack, "operator")
    sandbox_start(stack, wait=False)
    stack.start(
        "web",
        [str(BIN / "gunicorn"), "commsportal.wsgi:application", "--bind", f"127.0.0.1:{stack.web_port}",
         "--workers", "2", "--timeout", "60", "--access-logfile", "-"],
    )  # fmt: skip
    stack.start(
        "worker",
        [str(BIN / "celery"), "-A", "commsportal", "worker", "--pool=prefork", "--concurrency=2",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "info"],
    )  # fmt: skip
    stack.wait_until("the sandbox", lambda: requests.get(f"{stack.sandbox}/sandbox/", timeout=2).ok)
    stack.wait_until("the portal", lambda: requests.get(f"{stack.web}/healthz", timeout=5).status_code == 200)
    stack.wait_until("the worker", lambda: "ready." in (stack.tmp / "worker.log").read_text(errors="replace"))


@contextmanager
def running_stack(tmp_path: Path, **options) -> Iterator[Stack]:
    """A started stack (see `Stack` for the options), stopped and its database dropped after."""
    stack = Stack(tmp_path, **options)
    try:
        stack_start(stack)
        yield stack
    finally:
        stack.stop()


def sandbox_get(stack: Stack, path: str, **params):
    """What the sandbox (Twilio) holds, from its control endpoints (`/sandbox/<path>`)."""
    response = requests.get(f"{stack.sandbox}/sandbox/{path}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


class Browser:
    """A logged-in user over HTTP: CSRF tokens from the forms, as a browser would send them.

    Redirects are followed here, not by requests: between two hops the Secure cookies are let
    through over plain http, which is the TLS-terminating proxy's part, done by hand."""

    def __init__(self, base_url: str, username: str, password: str = PASSWORD, *, totp_secret: str = "") -> None:
        self.base_url, self.session = base_url, requests.Session()
        page = self.get("/accounts/login/")
        response = self.post_form(page, "/accounts/login/", {"username": username, "password": password})
        assert "/accounts/login/" not in response.url, f"{username} could not log in"
        if urlsplit(response.url).path == SECOND_FACTOR_PAGE:
            assert totp_secret, f"{username} has a second factor: pass totp_secret"
            action = SECOND_FACTOR_PAGE + "?" + urlsplit(response.url).query
            response = self.post_form(response, action, {"code": fresh_totp_code(totp_secret, USED_TOTP_CODES)})
            assert urlsplit(response.url).path != SECOND_FACTOR_PAGE, f"{username}: the code was refused"

    def _request(self, method: str, url: str, data: dict | None = None) -> requests.Response:
        for _ in range(5):
            response = self.session.request(method, url, data=data, timeout=60, allow_redirects=False)
            for cookie in self.session.cookies:
                cookie.secure = False
            if response.status_code not in (301, 302, 303):
                return response
            method, data, url = "GET", None, requests.compat.urljoin(url, response.headers["Location"])
        raise AssertionError(f"too many redirects from {url}")

    def get(self, path: str) -> requests.Response:
        response = self._request("GET", self.base_url + path)
        assert response.status_code == 200, f"GET {path}: {response.status_code}\n{response.text[:2000]}"
        return response

    def post_form(self, page: requests.Response, action: str, data: dict) -> requests.Response:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, f"no CSRF token on {page.url}"
        response = self._request("POST", self.base_url + action, {"csrfmiddlewaretoken": token.group(1), **data})
        assert response.status_code == 200, f"POST {action}: {response.status_code}\n{response.text[:2000]}"
        return response


class Demo:
    """`manage.py demo` as a new user runs it (the README's command), its own process group, on
    free ports, with its database, broker folder and cache in `tmp_path` instead of var/."""

    STARTUP_SECONDS = 120

    def __init__(self, tmp_path: Path) -> None:
        web, sandbox = free_port(), free_port()
        self.web, self.sandbox = f"http://127.0.0.1:{web}", f"http://127.0.0.1:{sandbox}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("CELERY_", "DATABASE_", "REDIS_", "CACHE_", "TWILIO_", "PUBLIC_", "DJANGO_", "DEBUG", "SENDGRID_")
            )
        }
        env.update(
            ENV_FILE="",
            DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
            CELERY_FILESYSTEM_BROKER_DIR=str(tmp_path / "broker"),
            CACHE_DIR=str(tmp_path / "cache"),
        )
        self.log = tmp_path / "demo.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "demo", "--addrport", f"127.0.0.1:{web}", "--sandbox-port", str(sandbox)],
                cwd=BASE_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, probe, timeout: float = STARTUP_SECONDS):
        """`probe()` until it returns something truthy; fails with the demo's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the demo exited:\n{self.output()}"
            try:
                if value := probe():
                    return value
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()[-8000:]}")

    def stop(self) -> int:
        """SIGTERM as Ctrl-C would; its exit status."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        return self.process.returncode
