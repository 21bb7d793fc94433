"""CI must exercise the real services, not the SQLite/in-memory fallbacks."""

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import redis_reachable, services_required


@pytest.mark.django_db
def test_database_is_postgresql_when_services_required():
    if not services_required():
        pytest.skip("local run without REQUIRE_SERVICES: SQLite fallback allowed")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version_num')::int")
        assert cursor.fetchone()[0] >= 130000


def test_broker_and_cache_are_redis_when_services_required():
    if not services_required():
        pytest.skip("local run without REQUIRE_SERVICES")
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert redis_reachable(settings.CELERY_BROKER_URL)
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
