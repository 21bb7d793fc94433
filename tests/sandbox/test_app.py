"""The sandbox is a development and test app: installed with DEBUG on or SANDBOX_ENABLED set,
left out of production settings, and never imported by production code."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

PRODUCTION_PACKAGES = ("commsportal", "tenants", "messaging", "voice", "verify")
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "from django.core.management import get_commands; "
    "print(json.dumps({'sandbox': 'sandbox' in s.INSTALLED_APPS, "
    "'commands': sorted(c for c in get_commands() if c in ('demo', 'twilio_sandbox'))}))"
)


def settings_probe(tmp_path: Path, **env: str) -> dict:
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "commsportal.settings",
        "ENV_FILE": "",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'probe.sqlite3'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**base, **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def production(tmp_path: Path) -> dict[str, str]:
    return {
        "DEBUG": "False",
        "SECRET_KEY": "prod-" + "k" * 50,
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PUBLIC_BASE_URL": "https://portal.example.com",
        "ALLOWED_HOSTS": "portal.example.com",
        "REDIS_URL": "redis://127.0.0.1:6379/1",
    }


@pytest.mark.slow
def test_development_installs_the_sandbox_and_its_commands(tmp_path):
    assert settings_probe(tmp_path) == {"sandbox": True, "commands": ["demo", "twilio_sandbox"]}


@pytest.mark.slow
def test_production_leaves_the_sandbox_out(tmp_path):
    assert settings_probe(tmp_path, **production(tmp_path)) == {"sandbox": False, "commands": []}


@pytest.mark.slow
@pytest.mark.parametrize("flag, installed", [("True", True), ("False", False)])
def test_sandbox_enabled_decides_explicitly(tmp_path, flag, installed):
    found = settings_probe(tmp_path, **production(tmp_path), SANDBOX_ENABLED=flag)
    assert found["sandbox"] is installed
    assert settings_probe(tmp_path, SANDBOX_ENABLED=flag)["sandbox"] is installed  # DEBUG on


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_production_code_imports_nothing_from_the_sandbox():
    offenders = [
        f"{path.relative_to(settings.BASE_DIR)}: {module}"
        for package in PRODUCTION_PACKAGES
        for path in sorted((Path(settings.BASE_DIR) / package).rglob("*.py"))
        for module in imported_modules(path)
        if module == "sandbox" or module.startswith("sandbox.")
    ]
    assert offenders == []
