"""Everything messaging contributes to tenants' cross-app pages and jobs (`tenants.registry`).

Called once from `MessagingConfig.ready()`, after every model is loaded.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from tenants.registry import (
    PeriodicTasks,
    alert_checks,
    number_erasers,
    number_lookups,
    overview_panels,
    periodic_tasks,
    retention_purgers,
    support_columns,
)
from tenants.webhooks import webhook_credentials_changed

from .alerts import FAILURE_RATE_CHECK
from .erasure import MESSAGING_ERASER
from .models import TenantKeyword
from .overview import DELIVERY_PANEL, NUMBER_HISTORY_LOOKUP, OUTCOMES_COLUMN
from .retention import MESSAGE_BODIES_PURGER
from .schedules import PERIODIC_TASKS


def registrations_install() -> None:
    overview_panels.register(DELIVERY_PANEL)
    support_columns.register(OUTCOMES_COLUMN)
    number_lookups.register(NUMBER_HISTORY_LOOKUP)
    number_erasers.register(MESSAGING_ERASER)
    retention_purgers.register(MESSAGE_BODIES_PURGER)
    alert_checks.register(FAILURE_RATE_CHECK)
    periodic_tasks.register(PeriodicTasks(key="messaging", tasks=tuple(PERIODIC_TASKS)))
    # Inbound webhooks hold each tenant's keywords with its credentials: a change drops them.
    post_save.connect(webhook_credentials_changed, sender=TenantKeyword, dispatch_uid="messaging.keyword_saved")
    post_delete.connect(webhook_credentials_changed, sender=TenantKeyword, dispatch_uid="messaging.keyword_deleted")
