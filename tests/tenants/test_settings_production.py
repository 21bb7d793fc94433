"""Production settings: with DEBUG=False every required variable must be set, and a missing one
stops the process with a message naming it. Each case runs Django in a fresh interpreter with
a clean environment (no inherited variables, no .env file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

REQUIRED = (
    "SECRET_KEY",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "FIELD_ENCRYPTION_KEY",
    "PUBLIC_BASE_URL",
    "ALLOWED_HOSTS",
    "REDIS_URL",  # or CACHE_URL
)
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'debug': s.DEBUG, 'db': s.DATABASES['default']['NAME'], "
    "'conn_max_age': s.DATABASES['default']['CONN_MAX_AGE'], 'hosts': s.ALLOWED_HOSTS, "
    "'secret_key': s.SECRET_KEY, 'broker': s.CELERY_BROKER_URL, 'public': s.PUBLIC_BASE_URL, "
    "'cache': s.CACHES['default']['BACKEND']}))"
)


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "commsportal.settings",
        "ENV_FILE": "",  # never pick up a developer's .env
        "DEBUG": "False",
        "SECRET_KEY": "prod-" + "k" * 50,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PUBLIC_BASE_URL": "https://portal.example.com",
        "ALLOWED_HOSTS": "portal.example.com",
        "REDIS_URL": "redis://127.0.0.1:6379/1",
    }


def start(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_starts_with_every_required_variable(production_env, tmp_path):
    result = start(production_env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["debug"] is False
    assert seen["db"] == str(tmp_path / "prod.sqlite3")
    assert seen["hosts"] == ["portal.example.com"]
    assert seen["secret_key"] == production_env["SECRET_KEY"]
    assert seen["broker"] == "redis://127.0.0.1:6379/0"
    assert seen["public"] == "https://portal.example.com"
    assert seen["conn_max_age"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", REQUIRED)
def test_refuses_to_start_without(production_env, name):
    del production_env[name]
    result = start(production_env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert name in message
    assert [other for other in REQUIRED if other != name and other in message] == []


@pytest.mark.slow
@pytest.mark.parametrize("value", [None, "  "], ids=["unset", "blank"])
def test_names_every_missing_variable_at_once(production_env, value):
    for name in REQUIRED:
        if value is None:
            del production_env[name]
        else:
            production_env[name] = value  # whitespace is as good as missing
    result = start(production_env)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert all(name in message for name in REQUIRED)


@pytest.mark.slow
def test_cache_url_stands_in_for_redis(production_env, tmp_path):
    del production_env["REDIS_URL"]
    production_env["CACHE_URL"] = f"filecache://{tmp_path / 'cache'}"
    result = start(production_env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["cache"] == "django.core.cache.backends.filebased.FileBasedCache"


@pytest.mark.slow
@pytest.mark.parametrize("url", ["locmemcache://", "dummycache://"])
def test_a_cache_the_processes_cannot_share_is_refused(production_env, url):
    del production_env["REDIS_URL"]
    production_env["CACHE_URL"] = url
    result = start(production_env)
    assert result.returncode != 0 and "CACHE_URL" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_trusted_proxies_must_be_addresses_or_networks(production_env):
    production_env["TRUSTED_PROXIES"] = "10.0.0.0/24,lb.internal"
    result = start(production_env)
    assert result.returncode != 0 and "'lb.internal'" in result.stderr.strip().splitlines()[-1]
    production_env["TRUSTED_PROXIES"] = "10.0.0.0/24, 2001:db8::1"
    assert start(production_env).returncode == 0


@pytest.mark.slow
def test_env_file_fills_in_but_never_overrides(production_env, tmp_path):
    env_file = tmp_path / "prod.env"
    env_file.write_text(f"SECRET_KEY=from-the-file-{'x' * 40}\nALLOWED_HOSTS=file.example.com\n")
    del production_env["SECRET_KEY"]
    production_env["ENV_FILE"] = str(env_file)
    result = start(production_env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["secret_key"].startswith("from-the-file-")
    assert seen["hosts"] == ["portal.example.com"]  # the process environment wins


@pytest.mark.slow
def test_debug_mode_needs_nothing(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "commsportal.settings",
        "ENV_FILE": "",
        # Keep the probe's embedded state off the repository's var/.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}",
        "CELERY_FILESYSTEM_BROKER_DIR": str(tmp_path / "broker"),
    }
    result = start(env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["debug"] is True and seen["broker"] == "filesystem://"


def test_database_connections_are_persistent():
    database = settings.DATABASES["default"]
    assert database["CONN_MAX_AGE"] > 0
    assert database["CONN_HEALTH_CHECKS"] is True  # a reused connection is checked before use


SECURITY_PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'ssl_redirect': s.SECURE_SSL_REDIRECT, 'hsts': s.SECURE_HSTS_SECONDS, "
    "'session_secure': s.SESSION_COOKIE_SECURE, 'csrf_secure': s.CSRF_COOKIE_SECURE, "
    "'exempt': s.SECURE_REDIRECT_EXEMPT, 'failure_limit': s.AXES_FAILURE_LIMIT, "
    "'cool_off': s.AXES_COOLOFF_TIME.total_seconds()}))"
)


def probe_security(env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SECURITY_PROBE],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_deploy_check_is_clean(production_env):
    """`manage.py check --deploy` with production settings: no warning at all (HSTS W004, SSL
    redirect W008, cookies, DEBUG, ...)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=production_env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


@pytest.mark.slow
def test_production_enforces_https_and_the_test_stacks_can_turn_the_redirect_off(production_env):
    seen = probe_security(production_env)
    assert seen["ssl_redirect"] is True and seen["hsts"] >= 31_536_000
    assert seen["session_secure"] is True and seen["csrf_secure"] is True
    assert seen["exempt"] == [r"^webhooks/", r"^healthz$"]
    production_env["SECURE_SSL_REDIRECT"] = "False"
    assert probe_security(production_env)["ssl_redirect"] is False


@pytest.mark.slow
def test_sign_in_throttling_is_configured_from_the_environment(production_env):
    assert probe_security(production_env)["failure_limit"] == 5
    production_env.update(LOGIN_FAILURE_LIMIT="8", LOGIN_COOLOFF_MINUTES="30")
    seen = probe_security(production_env)
    assert seen["failure_limit"] == 8 and seen["cool_off"] == 30 * 60
