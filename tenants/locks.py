"""Named locks held to the end of the current transaction, for work that must not interleave
per key but has no row to lock yet (a code sent to a number: the check of the limits and the
send log it counts must be one step, or parallel requests all pass the check)."""

from __future__ import annotations

import hashlib

from django.db import transaction
from django.db.transaction import TransactionManagementError


def _key(name: str) -> int:
    """A signed 64-bit key for `name` (PostgreSQL's advisory lock keys are bigint)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def transaction_locks(*names: str) -> None:
    """Wait for, then hold until commit or rollback, the locks on `names`: PostgreSQL advisory
    transaction locks, taken in one order so two callers never wait on each other crosswise.
    Inside `transaction.atomic()` only. On SQLite nothing more is needed: its write
    transactions already run one at a time (`transaction_mode="IMMEDIATE"` in settings)."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise TransactionManagementError("transaction_locks() needs a transaction.atomic() block.")
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for key in sorted({_key(name) for name in names if name}):
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
