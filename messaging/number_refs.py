"""How a customer's number appears in portal URLs without leaking to support staff.

Members see the number itself (`/t/acme/numbers/+14155550123/history/`): readable and
bookmarkable. Support staff see numbers masked, so a link built for them must not carry the
full number either (it would sit in the page's HTML, their history and the server logs): they
get an opaque token instead, encrypted with the portal's field key and bound to the tenant.
Both forms resolve back to the E.164 number in the view.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.http import Http404

from tenants.crypto import fernet
from tenants.phones import phone_parse

__all__ = ["number_from_ref", "number_ref"]


def number_ref(phone: str, *, tenant, access) -> str:
    """The URL form of `phone` for this viewer: the number, or a token when they see it masked."""
    if access is not None and access.masks_numbers:
        return fernet().encrypt(f"{tenant.pk}:{phone}".encode()).decode()
    return phone


def number_from_ref(ref: str, *, tenant) -> str:
    """The E.164 number a URL names (either form); 404 for anything else."""
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
