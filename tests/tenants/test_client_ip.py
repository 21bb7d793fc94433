"""The audit log's "from which IP": the socket's peer, unless that is one of our own proxies;
then the right-most X-Forwarded-For entry that isn't ours. Nothing a client writes is believed."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from tenants.http import client_ip

PROXY = "10.0.0.5"


def request(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


@pytest.fixture(autouse=True)
def trusted(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24", "2001:db8::1"]


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("203.0.113.7", None, "203.0.113.7"),  # no proxy
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # a client can't claim another address
        (PROXY, "198.51.100.1", "198.51.100.1"),  # our proxy says who connected
        (PROXY, "1.2.3.4, 198.51.100.1", "198.51.100.1"),  # the client's own claim (left) ignored
        (PROXY, "198.51.100.1, 10.0.0.9", "198.51.100.1"),  # two of our proxies
        ("2001:db8::1", "2001:db8:ffff::7", "2001:db8:ffff::7"),  # IPv6
        (PROXY, "", PROXY),  # nothing forwarded: the proxy itself
        (PROXY, "not-an-ip, 198.51.100.1", "198.51.100.1"),
        (PROXY, "198.51.100.1, garbage", PROXY),  # a malformed hop our side: believe nothing
        (PROXY, "10.0.0.7, 10.0.0.8", "10.0.0.7"),  # only our own hops: the furthest one
        ("fe80::1%eth0", None, "fe80::1"),  # a zone id the database's inet type refuses
        (PROXY, "fe80::2%3", "fe80::2"),
    ],
)
def test_client_ip(remote, forwarded, expected):
    assert client_ip(request(remote, forwarded)) == expected


def test_without_trusted_proxies_forwarded_for_is_never_read(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(request(PROXY, "198.51.100.1")) == PROXY


def test_no_request():
    assert client_ip(None) is None
