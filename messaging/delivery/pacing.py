"""Send pacing shared by every worker: one rate limit per (tenant, sender), kept in Redis.

Carriers meter each sender (a US long code takes about 1 message/s, toll-free about 3/s), so
the limit must hold across all worker processes and hosts at once, not per process. The
bucket is a GCRA ("generic cell rate algorithm", the token bucket expressed as one timestamp):
Redis stores the key's *theoretical arrival time* (TAT) and an atomic Lua script, run with
Redis's own clock so that hosts with skewed clocks agree, either grants the caller a slot
and moves the TAT on by 1/rate, or answers how long to wait. A granted slot may lie in the
near future: the caller sleeps until it instead of polling, so waiting workers never
stampede the key and the aggregate rate is exact (the test measures it with 4 processes).

`burst` lets a sender that was idle send up to that many messages back to back.

Without REDIS_URL (the embedded demo, `manage.py demo`) the bucket lives in this process
only: each worker process then paces on its own, so N processes send at up to N times the
rate. Never run production without Redis.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache

import redis
from django.conf import settings

__all__ = ["pacing_acquire", "pacing_key", "pacing_reserve", "redis_client"]

# KEYS[1] = bucket key. ARGV = interval µs (1/rate), tolerance µs ((burst-1)/rate),
# max wait µs (-1: wait as long as needed). Returns the wait in µs before the granted slot,
# or -(wait) - 1 when the wait exceeds the maximum (nothing reserved).
_GCRA_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then
  return -math.floor(wait) - 1
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
return math.floor(wait)
"""


def pacing_key(*, tenant_id: int, sender: str) -> str:
    """The bucket of one tenant's sender (a number or a Messaging Service SID)."""
    return f"commsportal:pacing:{tenant_id}:{sender or 'default'}"


@lru_cache(maxsize=4)
def redis_client(url: str):
    """One client (and connection pool) per URL per process; redis-py re-opens after a fork."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


@lru_cache(maxsize=4)
def _script(url: str):
    return redis_client(url).register_script(_GCRA_LUA)


def _params(rate: float, burst: int) -> tuple[float, float]:
    if rate <= 0:
        raise ValueError("rate must be positive")
    interval = 1_000_000 / rate
    return interval, interval * (max(int(burst), 1) - 1)


class _LocalBuckets:
    """Same algorithm in this process only (embedded demo without Redis)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}

    def reserve(self, key: str, interval: float, tolerance: float, max_wait: float) -> float:
        with self._lock:
            now = time.monotonic() * 1_000_000
            tat = max(self._tat.get(key, 0.0), now)
            wait = max(tat - tolerance - now, 0.0)
            if max_wait >= 0 and wait > max_wait:
                return -wait - 1
            self._tat[key] = tat + interval
            return wait


_local = _LocalBuckets()


def pacing_reserve(
    *, key: str, rate: float, burst: int = 1, max_wait: float | None = None, url: str | None = None
) -> float | None:
    """Reserve the next slot of `key`; returns the seconds to wait until it, or None when that
    would be longer than `max_wait` seconds (then nothing is reserved).

    A reserved slot is spent whether or not the caller then sends: callers that might change
    their mind (a paused campaign) lose at most one slot.
    """
    interval, tolerance = _params(rate, burst)
    max_wait_us = -1 if max_wait is None else max(max_wait, 0) * 1_000_000
    url = settings.REDIS_URL if url is None else url
    if url:
        result = int(_script(url)(keys=[key], args=[interval, tolerance, max_wait_us]))
    else:
        result = _local.reserve(key, interval, tolerance, max_wait_us)
    if result < 0:
        return None
    return result / 1_000_000


def pacing_acquire(
    *, key: str, rate: float, burst: int = 1, timeout: float | None = None, url: str | None = None
) -> bool:
    """Block until `key` allows one more send at `rate` per second (bursts of up to `burst`).

    Returns False, without waiting or spending anything, when the wait would exceed `timeout`
    seconds (`timeout=0`: only if a slot is free right now; None: wait as long as needed).
    """
    wait = pacing_reserve(key=key, rate=rate, burst=burst, max_wait=timeout, url=url)
    if wait is None:
        return False
    if wait > 0:
        time.sleep(wait)
    return True
