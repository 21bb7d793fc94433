"""The shape of the code base, held by tests: module and function sizes, no imports hidden in
function bodies, and a base app (`tenants`) that names no feature app anywhere.

import-linter (`lint-imports`, run by the README's test command) holds the import layers; these
checks cover what it cannot see: sizes, `apps.get_model("messaging", …)`/`import_module("voice…")`
strings, and imports deferred into a function to dodge a cycle.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("commsportal", "tenants", "messaging", "voice", "verify", "sandbox")
FEATURE_APPS = ("messaging", "voice", "verify", "sandbox", "commsportal")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    files = []
    for app in APPS:
        files.extend(p for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts)
    return sorted(files)


SOURCES = _sources()


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_the_sources_are_found():
    # A check over no files would pass forever: make sure the walk sees the apps.
    assert len(SOURCES) > 50
    assert {p.relative_to(ROOT).parts[0] for p in SOURCES} >= set(APPS)


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_module_is_at_most_600_lines(path):
    lines = path.read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{_rel(path)} has {lines} lines: split it by concern"


def test_no_function_over_80_lines():
    long = []
    for path in SOURCES:
        for node in _functions(ast.parse(path.read_text())):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                long.append(f"{_rel(path)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def test_no_imports_inside_function_bodies():
    found = []
    for path in SOURCES:
        if path.name == "settings.py":  # settings probe optional packages at module level only
            continue
        for func in _functions(ast.parse(path.read_text())):
            if path.name == "apps.py" and func.name == "ready":
                continue  # Django's app-loading protocol: models exist only once ready() runs
            for node in ast.walk(func):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    found.append(f"{_rel(path)}:{node.lineno} in {func.name}()")
    assert not found, "imports inside function bodies (move them to the module top):\n" + "\n".join(found)


_DYNAMIC = re.compile(r"""(get_model|import_module|import_string)\(\s*f?["']([a-z_]+)""")


def test_tenants_names_no_feature_app():
    offending = []
    for path in (ROOT / "tenants").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offending += [f"{_rel(path)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in FEATURE_APPS]
        for match in _DYNAMIC.finditer(path.read_text()):
            if match.group(2).split(".")[0] in FEATURE_APPS:
                offending.append(f"{_rel(path)}: {match.group(0)}")
    assert not offending, "\n".join(offending)


def test_import_contracts_are_declared():
    # lint-imports runs in the README's test command; this keeps its contracts from quietly going.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    kinds = {c["type"] for c in config["contracts"]}
    assert kinds >= {"layers", "independence", "forbidden"}
    readme = (ROOT / "README.md").read_text()
    assert "lint-imports" in readme


def _view_and_form_modules() -> list[Path]:
    return [
        p
        for p in SOURCES
        if p.parts[-2] in ("views", "forms")
        or p.name in ("views.py", "forms.py")
        or p.name.endswith(("_views.py", "_forms.py"))
    ]


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def test_views_and_forms_hold_no_queries_or_transactions():
    # Views and forms call selectors and services; the one exception is handing a queryset to
    # `get_scoped_or_404`, the scoping helper (it still goes through the fail-closed manager),
    # and `Model.objects.none()` as a form field's empty starting queryset.
    found = []
    modules = _view_and_form_modules()
    assert len(modules) > 10
    for path in modules:
        tree = ast.parse(path.read_text())
        parents = _parents(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "transaction":
                found.append(f"{_rel(path)}:{node.lineno} uses transaction")
            if not (isinstance(node, ast.Attribute) and node.attr in ("objects", "all_tenants")):
                continue
            up, allowed = parents.get(node), False
            if isinstance(up, ast.Attribute) and up.attr == "none":
                allowed = True
            while up is not None and not allowed:
                if isinstance(up, ast.Call) and getattr(up.func, "id", "") == "get_scoped_or_404":
                    allowed = True
                up = parents.get(up)
            if not allowed:
                found.append(f"{_rel(path)}:{node.lineno} queries .{node.attr}")
    assert not found, "views/forms must call selectors or services:\n" + "\n".join(found)
