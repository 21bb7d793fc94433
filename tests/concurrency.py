"""Racing the same work on several database connections at once (PostgreSQL only: SQLite
serialises writers, so there is no race to see)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest
from django.db import connection, connections


def postgresql_required(services_required: bool) -> None:
    """Skip (or fail, when the services are required) unless the tests run on PostgreSQL."""
    if connection.vendor != "postgresql":
        if services_required:
            pytest.fail("REQUIRE_SERVICES=1 but the database is not PostgreSQL")
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so there is no race to test")


def run_concurrently(apply: Callable, items: Sequence) -> list[Exception]:
    """`apply(item)` for every item, each in its own thread released together by a barrier;
    the exceptions they raised."""
    errors: list[Exception] = []
    barrier = threading.Barrier(len(items))

    def run(item):
        try:
            barrier.wait()
            apply(item)
        except Exception as exc:  # noqa: BLE001 - surfaced by the caller's assertion
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
