"""A dry run's upload waits in the cache for "Import now": encrypted, since the cache may be a
folder on disk and the file holds phone numbers."""

from __future__ import annotations

import pickle

import pytest
from django.core.cache import cache

from messaging.ledgers import imports

pytestmark = pytest.mark.django_db

CSV = b"phone,reason\n+14155550101,asked by phone\n"


def test_the_stash_holds_no_plaintext_and_gives_it_back(tenant, tenant_admin):
    token = imports.upload_stash(tenant=tenant, user=tenant_admin, kind="opt_out", content=CSV, filename="o.csv")
    key = imports._stash_key(tenant=tenant, user=tenant_admin, kind="opt_out", token=token)
    stored = pickle.dumps(cache.get(key))
    assert b"+14155550101" not in stored and b"asked by phone" not in stored and b"o.csv" not in stored
    assert imports.upload_fetch(tenant=tenant, user=tenant_admin, kind="opt_out", token=token) == (CSV, "o.csv")


def test_another_user_or_a_tampered_stash_gets_nothing(tenant, tenant_admin, viewer):
    token = imports.upload_stash(tenant=tenant, user=tenant_admin, kind="opt_out", content=CSV, filename="o.csv")
    assert imports.upload_fetch(tenant=tenant, user=viewer, kind="opt_out", token=token) is None
    key = imports._stash_key(tenant=tenant, user=tenant_admin, kind="opt_out", token=token)
    sealed, name = cache.get(key)
    cache.set(key, (sealed[:-4] + b"AAAA", name))
    assert imports.upload_fetch(tenant=tenant, user=tenant_admin, kind="opt_out", token=token) is None
