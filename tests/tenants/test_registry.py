"""tenants collects the apps' parts of its cross-app pages and jobs through `tenants.registry`,
and never imports the feature apps (the layering rule)."""

from __future__ import annotations

import ast
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tenants import registry
from tenants.registry import Registry, SupportColumn

TENANTS = Path(registry.__file__).parent
# Being moved out of tenants into their own app; not part of the layering rule here.
ELSEWHERE = {"sandbox.py", "demo.py", "twilio_sandbox.py"}
UPPER_LAYERS = ("messaging", "voice", "verify", "commsportal", "sandbox")


@dataclass(frozen=True)
class Entry:
    key: str
    order: int = 100


def test_entries_come_by_order_then_registration():
    entries = Registry[Entry]("test")
    for entry in (Entry("b"), Entry("a", order=5), Entry("c")):
        entries.register(entry)
    assert [e.key for e in entries] == ["a", "b", "c"]
    assert len(entries) == 3 and "a" in entries and entries.get("z") is None


def test_registering_again_is_harmless_but_a_different_entry_is_refused():
    entries = Registry[Entry]("test")
    entries.register(Entry("a"))
    entries.register(Entry("a"))
    with pytest.raises(ImproperlyConfigured, match="'a' is already registered"):
        entries.register(Entry("a", order=1))
    entries.unregister("a")
    assert len(entries) == 0


def test_messaging_registers_its_parts():
    assert "messaging.delivery" in registry.overview_panels
    assert "outcomes" in registry.support_columns
    assert "messaging.number_history" in registry.number_lookups
    assert "messaging" in registry.number_erasers
    assert "messaging.message_bodies" in registry.retention_purgers
    assert "failure_rate" in registry.alert_checks
    assert "messaging" in registry.periodic_tasks


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_tenants_imports_no_feature_app():
    offending = [
        f"{path.relative_to(TENANTS)}: {name}"
        for path in TENANTS.rglob("*.py")
        if "migrations" not in path.parts and path.name not in ELSEWHERE
        for name in _imports(path)
        if name.split(".")[0] in UPPER_LAYERS
    ]
    assert offending == []


def test_support_overview_csv_collects_registered_columns(client, support_user, tenant, other_tenant):
    column = SupportColumn(
        key="widgets",
        collect=lambda *, now: {tenant.id: 7},
        empty=int,
        header_template_name="",
        cell_template_name="",
        header_count=1,
        csv_headers=("widgets",),
        csv_values=lambda value: [value],
        order=200,
    )
    registry.support_columns.register(column)
    try:
        client.force_login(support_user)
        response = client.get("/support/", {"format": "csv"})
    finally:
        registry.support_columns.unregister("widgets")
    reader = csv.reader(io.StringIO(response.content.decode()))
    header = next(reader)
    # The apps' columns sit between the tenant's and the base's own, by order (messaging's first);
    # other apps' columns (email, verify) may be there too.
    assert header[:4] == ["tenant", "name", "account_sid", "status"]
    assert header[-3:] == ["rejected_webhooks_7d", "open_alerts", "twilio"]
    assert header[4:7] == ["failure_rate_24h", "failed_24h", "finished_24h"]
    position = header.index("widgets")
    widgets = {row[0]: row[position] for row in reader}
    assert widgets == {tenant.slug: "7", other_tenant.slug: "0"}
