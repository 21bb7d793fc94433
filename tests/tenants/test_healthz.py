"""/healthz: anonymous JSON for load balancers; 200 only when the database and the broker the
Celery app really uses both answer, 503 quickly otherwise."""

from __future__ import annotations

import time

import pytest

from commsportal.celery import app as celery_app
from tests.conftest import redis_required

UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def broker_url(monkeypatch):
    """Point the Celery app itself at another broker: it read its settings once, at import."""

    def use(url: str) -> None:
        # connection_for_write() reads broker_write_url, which the Django settings (namespace
        # CELERY) already resolved from CELERY_BROKER_URL: override that key, not broker_url.
        monkeypatch.setitem(celery_app.conf, "broker_write_url", url)

    return use


def require_redis(url: str) -> None:
    redis_required(url)


@pytest.mark.django_db
def test_healthy_with_configured_broker(client):
    configured = celery_app.conf.broker_url
    if configured.startswith("redis://"):
        require_redis(configured)
    response = client.get("/healthz")  # anonymous: no login redirect
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


@pytest.mark.django_db
def test_healthy_on_redis(client, broker_url):
    require_redis("redis://127.0.0.1:6379/15")
    broker_url("redis://127.0.0.1:6379/15")
    response = client.get("/healthz")
    assert response.status_code == 200
    broker = response.json()["checks"]["broker"]
    assert (broker["ok"], broker["transport"]) == (True, "redis")


@pytest.mark.django_db
def test_unreachable_broker_answers_503_quickly(client, broker_url):
    broker_url(UNREACHABLE_BROKER)
    started = time.monotonic()
    response = client.get("/healthz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is True  # one failing check doesn't hide the other
    assert elapsed < 5, f"healthz took {elapsed:.1f} s with the broker down"
    # Nothing about the broker's address or credentials leaks to anonymous callers.
    assert "127.0.0.1:1" not in response.content.decode()


@pytest.mark.django_db
def test_healthz_is_read_only(client):
    assert client.post("/healthz").status_code == 405
