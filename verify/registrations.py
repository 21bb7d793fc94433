"""What verify adds to tenants' cross-app pages, installed from `VerifyConfig.ready()`: the
Verify breaker column of the support overview, its part of a GDPR erasure, and the expiry job."""

from __future__ import annotations

from datetime import timedelta

from tenants.registry import PeriodicTasks, SupportColumn, number_erasers, periodic_tasks, support_columns

from .codes.breaker import breaker_states
from .erasure import VERIFY_ERASER


def _breakers_collect(*, now) -> dict:
    return {tenant_id: rows for tenant_id, rows in breaker_states().items() if tenant_id is not None}


def _breakers_csv(rows) -> tuple[str]:
    return ("; ".join(f"{row.channel}:{row.state}" for row in rows),)


BREAKER_COLUMN = SupportColumn(
    key="verify_breakers",
    collect=_breakers_collect,
    empty=list,
    header_template_name="verify/_support_breaker_header.html",
    cell_template_name="verify/_support_breaker_cell.html",
    header_count=1,
    csv_headers=("verify_breakers",),
    csv_values=_breakers_csv,
    order=200,
)


PERIODIC = PeriodicTasks(
    key="verify",
    tasks=(
        {
            "name": "Expire pending verifications whose code expired",
            "task": "verify.tasks.verifications_expire_task",
            "every": timedelta(minutes=5),
        },
    ),
)


def registrations_install() -> None:
    support_columns.register(BREAKER_COLUMN)
    number_erasers.register(VERIFY_ERASER)
    periodic_tasks.register(PERIODIC)
