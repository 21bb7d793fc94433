"""commsportal.cache: Django's Redis cache with its client held, not rebuilt per operation."""

import os
import threading

import pytest
import redis
from django.conf import settings

from commsportal.cache import RedisCache
from tests.conftest import redis_required

URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/13"


@pytest.fixture
def redis_cache():
    redis_required(URL)
    cache = RedisCache(URL, {"KEY_PREFIX": "test-held-client"})
    yield cache
    cache.delete_many(["a", "n"])


def test_one_client_serves_every_operation(redis_cache, monkeypatch):
    built = []
    real_init = redis.Redis.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting_init)
    redis_cache.set("a", {"x": 1})
    for _ in range(20):
        assert redis_cache.get("a") == {"x": 1}
    redis_cache.add("n", 0)
    assert redis_cache.incr("n") == 1
    assert len(built) == 1  # Django's own client builds one per call: 23 here


def test_the_held_client_is_shared_safely_between_threads(redis_cache):
    errors = []

    def work(i):
        try:
            for j in range(50):
                redis_cache.set(f"a-{i}", j)
                assert redis_cache.get(f"a-{i}") == j
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    redis_cache.delete_many([f"a-{i}" for i in range(8)])
    assert errors == []


def test_settings_use_it_for_redis():
    if settings.CACHES["default"]["BACKEND"].endswith("FileBasedCache"):
        pytest.skip("no Redis configured: the cache is a folder")
    assert settings.CACHES["default"]["BACKEND"] == "commsportal.cache.RedisCache"
