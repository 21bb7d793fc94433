"""Reading a Twilio webhook's form fields: missing fields are empty, numbers are tolerant, phone
numbers normalised the way the ledgers store them."""

from __future__ import annotations

from collections.abc import Mapping

from tenants.models import Tenant
from tenants.phones import phone_parse_sender, tenant_phone_region


def params_without_nul(params: Mapping) -> dict[str, str]:
    """The payload as a plain dict with every NUL replaced by U+FFFD.

    A signed webhook may carry NUL (a handset's stray byte, or a test of ours); PostgreSQL text
    and JSON columns refuse it, and a refused insert would lose the customer's text, which may
    be a STOP. The replacement character keeps "something was here" visible in the log.
    """
    return {str(k).replace("\x00", "\ufffd"): str(params.get(k) or "").replace("\x00", "\ufffd") for k in params}


def param_text(params: Mapping, name: str) -> str:
    """A field as stripped text; a missing field is empty (Twilio omits what does not apply)."""
    return str(params.get(name) or "").strip()


def params_dict(params: Mapping) -> dict[str, str]:
    """A plain dict of the payload (a QueryDict's last value per name), for JSON storage."""
    return {str(k): str(params.get(k) or "") for k in params}


def param_int(value) -> int | None:
    """A non-negative integer field, or None for anything else (Twilio sends them as text)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def param_small_int(value) -> int | None:
    """`param_int` that also fits a PostgreSQL smallint column, else None."""
    number = param_int(value)
    return number if number is not None and number <= 32767 else None


def param_phone(raw: str, *, tenant: Tenant) -> str:
    """A webhook's number field: E.164 when it is a valid phone number (a national one read as
    the tenant's), else as received (short codes, alphanumeric sender IDs, `whatsapp:`
    addresses), via the one parser."""
    return phone_parse_sender(raw, region=tenant_phone_region(tenant))
