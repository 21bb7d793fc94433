"""Everything verify's email contributes to tenants' cross-app pages and jobs
(`tenants.registry`). Called once from `VerifyConfig.ready()`."""

from __future__ import annotations

from datetime import timedelta

from tenants.registry import (
    PeriodicTasks,
    SupportColumn,
    alert_notifiers,
    periodic_tasks,
    retention_purgers,
    support_columns,
)

from .notifications import ALERT_NOTIFIER
from .retention import EMAIL_CONTENTS_PURGER
from .selectors import EmailHealth, email_health_collect


def _email_csv(health: EmailHealth) -> list:
    return [health.sent, health.failed, health.suppressed, health.config_error]


EMAIL_COLUMN = SupportColumn(
    key="verify.email",
    collect=email_health_collect,
    empty=EmailHealth,
    header_template_name="verify/_support_email_header.html",
    cell_template_name="verify/_support_email_cells.html",
    header_count=1,
    csv_headers=("email_sent_24h", "email_failed_24h", "email_suppressed_24h", "email_config_error"),
    csv_values=_email_csv,
    order=150,
)


EMAIL_JOBS = PeriodicTasks(
    key="verify.email",
    tasks=(
        {
            "name": "Re-enqueue queued emails whose delivery task was lost",
            "task": "verify.tasks.emails_release_task",
            "every": timedelta(seconds=60),
        },
    ),
)


def email_registrations_install() -> None:
    alert_notifiers.register(ALERT_NOTIFIER)
    support_columns.register(EMAIL_COLUMN)
    periodic_tasks.register(EMAIL_JOBS)
    retention_purgers.register(EMAIL_CONTENTS_PURGER)
