"""HTTP-side helpers: what only a view can know about its caller."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

from .audit import AuditContext


@lru_cache(maxsize=4)
def _proxy_networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip())


def _is_trusted_proxy(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _proxy_networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request) -> str | None:
    """The caller's address, for the audit log.

    REMOTE_ADDR is the peer of the socket: behind a TLS-terminating proxy that is the proxy.
    Only when the peer is one of `TRUSTED_PROXIES` is X-Forwarded-For read, from the right
    (the entries our own proxies appended), skipping trusted hops: the first address that is
    not ours is the client. Anything a client wrote further left is never believed.
    """
    if request is None:
        return None
    remote = (request.META.get("REMOTE_ADDR") or "").split("%", 1)[0] or None  # no IPv6 zone id
    if not remote or not _is_trusted_proxy(remote):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote  # a malformed chain proves nothing: keep the proxy's own address
        if not _is_trusted_proxy(hop):
            return hop.split("%", 1)[0]
    return hops[0] if hops else remote


def audit_context(request) -> AuditContext:
    """The request's signed-in user (if any) and client IP, built once per request by the view."""
    user = getattr(request, "user", None)
    return AuditContext(actor=user if user is not None and user.is_authenticated else None, ip=client_ip(request))
