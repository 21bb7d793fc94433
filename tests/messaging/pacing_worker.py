"""Child-process body for the pacing test (spawned, so it imports nothing Django needs set up)."""

from __future__ import annotations

import time


def hammer(url: str, key: str, rate: float, start_at: float, seconds: float, queue) -> None:
    """Acquire `key` as fast as the bucket allows until `seconds` after `start_at`; report grant times."""
    from messaging.delivery.pacing import pacing_acquire

    granted: list[float] = []
    while time.time() < start_at:
        time.sleep(0.001)
    while True:
        remaining = start_at + seconds - time.time()
        if remaining <= 0:
            break
        if pacing_acquire(key=key, rate=rate, timeout=remaining, url=url):
            granted.append(time.time())
    queue.put(granted)
