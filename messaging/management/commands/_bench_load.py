"""The load side of `bench_webhooks`: gunicorn serving `commsportal.bench`, and a keep-alive
load generator (wrk with a Lua script when installed, else Python threads on persistent
connections) that sends a list of pre-built requests, each once."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from django.conf import settings
from django.core.management.base import CommandError

STARTUP_SECONDS = 60
WRK_THREADS = 2

#: Each wrk thread sends its share of the request file (line i for i ≡ thread id), in order.
LUA = r"""
local lines, step, index = {}, 1, 1
local ids = 0
function setup(thread)
  thread:set("tid", ids)
  ids = ids + 1
end
function init(args)
  step = tonumber(args[2])
  local n = 0
  for line in io.lines(args[1]) do
    if n % step == tid then table.insert(lines, line) end
    n = n + 1
  end
  if #lines == 0 then  -- fewer requests than threads: every thread sends them all
    for line in io.lines(args[1]) do table.insert(lines, line) end
  end
end
function request()
  local line = lines[index]
  index = index % #lines + 1
  local path, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
  local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
  if signature ~= "" then headers["X-Twilio-Signature"] = signature end
  return wrk.format("POST", path, headers, body)
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    raise CommandError("Set DATABASE_URL (the server process needs it).")


class Server:
    """gunicorn (gthread: each worker a thread pool that keeps connections open) serving
    `commsportal.bench` with this process's database and encryption keys, DEBUG off."""

    def __init__(
        self, scratch: Path, *, workers: int, threads: int, extra_env: dict | None = None, name: str = "gunicorn"
    ) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = scratch / f"{name}.log"
        env = {**os.environ, "ENV_FILE": ""}
        if not (env.get("REDIS_URL") or env.get("CACHE_URL")):
            env["CACHE_URL"] = f"filecache://{scratch / 'cache'}"  # DEBUG off wants a named cache
        env.update(
            DJANGO_SETTINGS_MODULE="commsportal.settings",
            DEBUG="False",
            SECURE_SSL_REDIRECT="False",  # plain http on 127.0.0.1: no TLS proxy in front
            SECRET_KEY=settings.SECRET_KEY,  # this process signs the session the page timings use
            DATABASE_URL=_database_url(),
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            FIELD_ENCRYPTION_KEY=",".join(settings.FIELD_ENCRYPTION_KEYS),
            PUBLIC_BASE_URL=self.base_url,
            ALLOWED_HOSTS="127.0.0.1",
            PYTHONPATH=str(settings.BASE_DIR),  # this checkout first, whatever the venv points at
        )
        env.update(extra_env or {})
        self.env = env  # the same environment for any other process of the run (a Celery worker)
        gunicorn = Path(sys.executable).with_name("gunicorn")
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(gunicorn), "commsportal.bench:application", "--bind", f"127.0.0.1:{self.port}",
                 "--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads),
                 "--keep-alive", "30", "--log-level", "warning"],
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
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("POST", "/bench/bare/", b"")
            return conn.getresponse().status == 204
        except OSError:
            return False

    def stop(self) -> None:
        process_stop(self.process)


def browse(cookies: dict[str, str], urls: dict[str, str], *, seconds: float, pause: float) -> list:
    """A signed-in user reading pages: each of `urls` in turn, `pause` seconds apart, for
    `seconds`; (page, status, ms) for each request. Run in a process of its own (see
    `drill_soak`): a timer sharing a GIL with the load generator's threads measures them too."""
    session = requests.Session()
    session.cookies.update(cookies)
    seen, stop_at = [], time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        for page, url in urls.items():
            started = time.perf_counter()
            try:
                status = session.get(url, timeout=30, allow_redirects=False).status_code
            except requests.RequestException:
                status = 0
            seen.append((page, status, (time.perf_counter() - started) * 1000))
            time.sleep(pause)
    return seen


def process_stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group (started with start_new_session), SIGKILL after 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")


def cpu_weight_lower(pid: int, nice: int) -> str:
    """Give the session `pid` leads (`Server` and the drills' workers start each in a session
    of its own) a lower CPU weight, `nice` steps down, as a deployment gives a background
    service a lower systemd `CPUWeight`; what was applied, for the report.

    Where the kernel groups sessions (autogroup, on by default), a nice value only orders the
    processes inside their own group: the group's weight is set through /proc/<pid>/autogroup.
    Elsewhere each process of the group gets the nice value (gunicorn's later workers inherit
    the master's). Lowering a weight needs no privilege."""
    if nice <= 0:
        return "default"
    try:
        autogroups = AUTOGROUP_SWITCH.read_text().strip() == "1"
    except OSError:
        autogroups = False
    if autogroups:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        return f"autogroup nice {nice}"
    os.setpriority(os.PRIO_PGRP, os.getpgid(pid), nice)
    return f"nice {nice}"


def drive(
    server: Server, batch: list[tuple[str, str, str]], scratch: Path, *, seconds: float, connections: int
) -> dict:
    """Send `batch` (path, signature, body) for `seconds` over `connections` keep-alive
    connections; requests/s, latency percentiles and how many answers were not 2xx."""
    if shutil.which("wrk"):
        return _wrk(server, batch, scratch, seconds=seconds, connections=connections)
    return _python(server, batch, seconds=seconds, connections=connections)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return round(float(number) * _UNITS[unit], 2)


def _wrk(server: Server, batch, scratch: Path, *, seconds: float, connections: int) -> dict:
    requests_file, script = scratch / "requests.tsv", scratch / "requests.lua"
    requests_file.write_text("".join(f"{path}\t{sig}\t{body}\n" for path, sig, body in batch))
    script.write_text(LUA)
    out = subprocess.run(
        ["wrk", "-t", str(WRK_THREADS), "-c", str(connections), "-d", f"{max(round(seconds), 1)}s", "--latency", "-s",
         str(script), server.base_url, "--", str(requests_file), str(WRK_THREADS)],
        capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    if out.returncode:
        raise CommandError(f"wrk failed: {out.stdout}{out.stderr}")
    out = out.stdout
    latency = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, flags=re.M))
    done = re.search(r"^\s+(\d+) requests in ([\d.]+)(m?s)", out, flags=re.M)
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    connect, read, write, timeouts = (int(n) for n in errors.groups()) if errors else (0, 0, 0, 0)
    # A request still unanswered when wrk stops counts as a timeout: at most one per connection is
    # the end of the run (the effects check allows for them), more is a server that hung.
    if connect or read or write or timeouts > connections or not done or set(latency) != {"50", "99"}:
        raise CommandError(f"wrk: {out}")
    return {
        "client": f"wrk {WRK_THREADS} threads",
        "requests": int(done.group(1)),
        "per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "refused": int(refused.group(1)) if refused else 0,
        "timeouts": timeouts,
    }


def _python(server: Server, batch, *, seconds: float, connections: int) -> dict:
    """The fallback: one thread per connection, each sending its share of `batch` in order."""
    deadline = time.perf_counter() + seconds
    results: list[list[tuple[int, float]]] = [[] for _ in range(connections)]

    def run(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        mine = batch[n::connections] or batch
        i = 0
        while time.perf_counter() < deadline:
            path, signature, body = mine[i % len(mine)]
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            if signature:
                headers["X-Twilio-Signature"] = signature
            started = time.perf_counter()
            conn.request("POST", path, body.encode(), headers)
            response = conn.getresponse()
            response.read()
            results[n].append((response.status, time.perf_counter() - started))
            i += 1
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    flat = [r for per in results for r in per]
    cuts = statistics.quantiles(sorted(s for _, s in flat), n=100)
    return {
        "client": "Python keep-alive client",
        "requests": len(flat),
        "per_second": round(len(flat) / elapsed, 1),
        "p50_ms": round(cuts[49] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "refused": sum(1 for status, _ in flat if status >= 400),
    }


def page_get(server: Server, url: str, *, cookie: str) -> str:
    """One signed-in GET; the page's HTML."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        conn.request("GET", url, headers={"Cookie": cookie})
        response = conn.getresponse()
        if response.status != 200:
            raise CommandError(f"{url}: HTTP {response.status}")
        return response.read().decode()
    finally:
        conn.close()


def time_pages(server: Server, urls: dict[str, str], *, cookie: str, samples: int) -> dict[str, dict]:
    """Median and p99 in ms of `samples` GETs of each url (after one warm-up), one keep-alive
    connection, signed in through `cookie`: the server's own time plus a local round trip."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    figures = {}
    for name, url in urls.items():
        times = []
        for _ in range(samples + 1):
            started = time.perf_counter()
            conn.request("GET", url, headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            times.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise CommandError(f"{url}: HTTP {response.status}")
        times = times[1:]
        cuts = statistics.quantiles(times, n=100)
        figures[name] = {"p50_ms": round(statistics.median(times), 1), "p99_ms": round(cuts[98], 1)}
    conn.close()
    return figures
