"""What the feature apps contribute to tenants' cross-app pages and jobs.

`tenants` is the base layer: it never depends on `messaging`, `voice` or `verify`. Yet some pages
and jobs span every app: the tenant overview, the support overview, the numbers page, GDPR
erasure of a number, the retention purge, the alert checks and the beat schedule. Each of those
keeps its own rules in tenants and collects the apps' parts from a registry here, which every
app fills in its `AppConfig.ready()` (as `django.contrib.admin.site.register` and
`django.core.checks.register` work). An app that is not installed simply contributes nothing.

This module imports no models, so `apps.py` modules may import it at their top (a tenant is
therefore typed `Any` here: a `tenants.models.Tenant`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from django import forms
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "AlertCheck",
    "AlertNotifier",
    "AlertReading",
    "NumberEraser",
    "NumberErasure",
    "NumberHistorySection",
    "NumberLookup",
    "OverviewPanel",
    "PeriodicTasks",
    "Registry",
    "RetentionPurger",
    "SupportColumn",
    "alert_checks",
    "alert_notifiers",
    "number_erasers",
    "number_history_sections",
    "number_lookups",
    "overview_panels",
    "periodic_tasks",
    "retention_purgers",
    "support_columns",
]


class _Entry(Protocol):
    key: str
    order: int


E = TypeVar("E", bound=_Entry)


class Registry(Generic[E]):
    """Entries keyed by `key`, iterated by (`order`, registration order).

    Registering the same entry twice is harmless (an app's `ready()` may run again in tests);
    a different entry under a taken key is a configuration error, never a silent override.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[str, E] = {}

    def register(self, entry: E) -> E:
        existing = self._entries.get(entry.key)
        if existing is not None and existing != entry:
            raise ImproperlyConfigured(f"{self.name}: {entry.key!r} is already registered.")
        self._entries[entry.key] = entry
        return entry

    def unregister(self, key: str) -> None:
        self._entries.pop(key, None)

    def get(self, key: str) -> E | None:
        return self._entries.get(key)

    def __iter__(self) -> Iterator[E]:
        ranked = sorted(enumerate(self._entries.values()), key=lambda pair: (pair[1].order, pair[0]))
        return iter([entry for _, entry in ranked])

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


# --- The tenant overview (`/t/<slug>/`) ---------------------------------------------------------


@dataclass(frozen=True)
class OverviewPanel:
    """A section of a tenant's overview page.

    `context(tenant=, params=)` gets the page's query parameters (never the request: panels
    are computed like any service) and returns the template variables of `template_name`;
    they are also merged into the page's context. `toolbar_template_name`, when set, is
    rendered in the page header (e.g. a time range switch).
    """

    key: str
    template_name: str
    context: Callable[..., Mapping[str, Any]]
    toolbar_template_name: str = ""
    order: int = 100


# --- The support overview (`/support/`) ---------------------------------------------------------


@dataclass(frozen=True)
class SupportColumn:
    """Per-tenant figures of one app in the support overview, its HTML table and its CSV.

    `collect(now=)` returns tenant id -> value for every tenant at once (a few grouped
    queries, never one per tenant); `empty()` is the value of a tenant it did not name.
    Row dicts carry the value under `key`. `sort_key(value)`, when given, orders the rows
    (worst first); `caption` explains that order under the table.
    """

    key: str
    collect: Callable[..., Mapping[int, Any]]
    empty: Callable[[], Any]
    header_template_name: str
    cell_template_name: str
    header_count: int
    csv_headers: tuple[str, ...]
    csv_values: Callable[[Any], Sequence[Any]]
    sort_key: Callable[[Any], tuple] | None = None
    caption: str = ""
    order: int = 100


# --- The numbers page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberLookup:
    """A "look up a customer's number" box on the numbers page.

    The form is bound from the query string when `param` is in it; once valid,
    `target(tenant=, access=, cleaned_data=)` names the URL the page redirects to.
    """

    key: str
    title: str
    form_class: type[forms.Form]
    param: str
    target: Callable[..., str]
    button: str
    help_text: str = ""
    order: int = 100


# --- One number's history page -----------------------------------------------------------------


@dataclass(frozen=True)
class NumberHistorySection:
    """A section of one customer number's history page (messaging's consent proof), from an app
    that keeps more about the number (voice: its calls).

    `context(tenant=, phone=)` returns the template variables of `template_name`, which the
    page includes after its own timeline; numbers in it go through the `phone` tag (masked
    for support staff) like the rest of the page.
    """

    key: str
    template_name: str
    context: Callable[..., Mapping[str, Any]]
    order: int = 100


# --- GDPR erasure of a number -------------------------------------------------------------------


@dataclass
class NumberErasure:
    """One erasure in progress, handed to every app's eraser inside one transaction.

    Erasers replace the number by `marker` in their tables, scrub it from free text (`pattern`
    finds it in any notation; `hint` is a short substring to pre-filter rows in the database)
    and record what they changed in `counts` (reported, and audited in `gdpr.erase`). Ids of
    records also held at Twilio go into `remote_ids[eraser key]`: redacted there after commit.
    """

    tenant: Any
    phone: str
    marker: str
    pattern: re.Pattern[str]
    hint: str
    now: datetime
    actor: Any
    counts: dict[str, int | bool] = field(default_factory=dict)
    remote_ids: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class NumberEraser:
    """An app's part of a GDPR erasure: `erase(erasure)` redacts the number in its tables.

    `remote_redact(tenant=, ids=) -> (done, failed)`, when given, redacts the ids the eraser
    listed in `erasure.remote_ids` at Twilio (after commit, only when the erasure asks).
    `describe(counts)` says in words what it redacted, for the operator's confirmation.
    """

    key: str
    erase: Callable[[NumberErasure], None]
    remote_redact: Callable[..., tuple[int, int]] | None = None
    describe: Callable[[Mapping[str, int | bool]], str] | None = None
    order: int = 100


# --- The retention purge ------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionPurger:
    """An app's personal data that goes after a tenant's retention period.

    tenants decides when (the cutoff, legal holds, the deadline) and in which batches; the app
    decides what: `batch_ids(tenant=, cutoff=, limit=)` lists the next ids that may go (in
    ascending order, none once done); `batch_purge(tenant=, cutoff=, ids=, now=, remote=)`
    purges them inside the caller's transaction and returns (purged count, ids to redact at
    Twilio when `remote`); `remote_redact(tenant=, ids=) -> (done, failed)` does that redaction
    after commit, in batches of at most `remote_batch_size`.
    """

    key: str
    batch_ids: Callable[..., list[int]]
    batch_purge: Callable[..., tuple[int, list[str]]]
    remote_redact: Callable[..., tuple[int, int]] | None = None
    remote_batch_size: int = 100
    order: int = 100


# --- Alert checks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertReading:
    """One check's verdict for one tenant: raise when `breached`, clear when `recovered`."""

    breached: bool
    recovered: bool
    details: dict


@dataclass(frozen=True)
class AlertCheck:
    """A kind of alert (an `Alert.Kind` value) an app checks every five minutes.

    `evaluate(now=)` reads every tenant at once: tenant id -> reading, for tenants it has data
    about; `idle(now=)` is the reading of a tenant with none (used to clear its open alert).
    `advice` goes into the email that raises it.
    """

    key: str
    evaluate: Callable[..., Mapping[int, AlertReading]]
    idle: Callable[..., AlertReading]
    advice: str
    order: int = 100


@dataclass(frozen=True)
class AlertNotifier:
    """How alert emails reach a tenant's admins, when an app delivers them (verify: through
    SendGrid). `notify(tenant=, recipients=, subject=, body=)` returns how many it sent, or
    None to decline (e.g. not configured): the next notifier, and finally Django's
    `send_mail`, takes over."""

    key: str
    notify: Callable[..., int | None]
    order: int = 100


# --- The beat schedule --------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodicTasks:
    """An app's periodic jobs: dicts with `name`, `task` (its Celery name) and `every`."""

    key: str
    tasks: tuple[Mapping[str, str | timedelta], ...]
    order: int = 100


overview_panels: Registry[OverviewPanel] = Registry("overview panels")
support_columns: Registry[SupportColumn] = Registry("support overview columns")
number_lookups: Registry[NumberLookup] = Registry("number lookups")
number_history_sections: Registry[NumberHistorySection] = Registry("number history sections")
number_erasers: Registry[NumberEraser] = Registry("number erasers")
retention_purgers: Registry[RetentionPurger] = Registry("retention purgers")
alert_checks: Registry[AlertCheck] = Registry("alert checks")
alert_notifiers: Registry[AlertNotifier] = Registry("alert notifiers")
periodic_tasks: Registry[PeriodicTasks] = Registry("periodic tasks")
