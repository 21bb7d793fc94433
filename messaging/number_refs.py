"""How a customer's number appears in portal URLs: never as itself.

A URL is written down in more places than the page it opens: browser history, bookmarks,
the Referer header sent to the next site, and the access logs of every proxy in between. So
links to a number's pages (history, unmask) carry an opaque token, for members and support
staff alike, encrypted with the portal's field key and bound to the tenant. The E.164 form
(`/t/acme/numbers/+14155550123/history/`, what links carried before) is still accepted, so
bookmarks keep working; gunicorn's access log masks it (tenants/logging.py).
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.http import Http404

from tenants.crypto import fernet
from tenants.phones import phone_parse

__all__ = ["number_from_ref", "number_ref"]


def number_ref(phone: str, *, tenant) -> str:
    """The URL form of `phone` in `tenant`: a token only this portal can read, only for this tenant."""
    return fernet().encrypt(f"{tenant.pk}:{phone}".encode()).decode()


def number_from_ref(ref: str, *, tenant) -> str:
    """The E.164 number a URL names (a token, or the number itself); 404 for anything else."""
    if ref.startswith("+"):
        try:
            return phone_parse(ref)
        except ValidationError as exc:
            raise Http404("Not a phone number") from exc
    try:
        tenant_pk, _, phone = fernet().decrypt(ref.encode()).decode().partition(":")
    except (InvalidToken, UnicodeDecodeError, ValueError) as exc:
        raise Http404("Unknown number reference") from exc
    if tenant_pk != str(tenant.pk) or not phone:
        raise Http404("Unknown number reference")
    return phone
