"""Everything voice contributes to tenants' cross-app pages and jobs (`tenants.registry`).

Called once from `VoiceConfig.ready()`, after every model is loaded.
"""

from __future__ import annotations

from tenants.registry import (
    PeriodicTasks,
    number_erasers,
    number_history_sections,
    number_lookups,
    overview_panels,
    periodic_tasks,
    retention_purgers,
)

from .overview import CALLS_HISTORY_SECTION, CALLS_LOOKUP, CALLS_PANEL
from .retention import CALLS_ERASER, RECORDINGS_PURGER
from .schedules import PERIODIC_TASKS


def registrations_install() -> None:
    overview_panels.register(CALLS_PANEL)
    number_lookups.register(CALLS_LOOKUP)
    number_history_sections.register(CALLS_HISTORY_SECTION)
    number_erasers.register(CALLS_ERASER)
    retention_purgers.register(RECORDINGS_PURGER)
    periodic_tasks.register(PeriodicTasks(key="voice", tasks=tuple(PERIODIC_TASKS)))
