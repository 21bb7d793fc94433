"""What verify adds to tenants' cross-app pages, installed from `VerifyConfig.ready()`: the
Verify breaker column of the support overview."""

from __future__ import annotations

from tenants.registry import SupportColumn, support_columns

from .codes.breaker import breaker_states


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


def registrations_install() -> None:
    support_columns.register(BREAKER_COLUMN)
