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


#: Fields stored in fixed-width columns, and those widths: a longer value (never a real Twilio
#: one) is cut to fit rather than failing the insert, and flagged in the stored payload.
FIELD_WIDTHS: dict[str, int] = {
    "AccountSid": 34,
    "MessageSid": 34,
    "SmsSid": 34,
    "SmsMessageSid": 34,
    "MessagingServiceSid": 34,
    "From": 32,
    "To": 32,
}
#: Integer fields stored in integer columns, and the largest value each column holds: a larger
#: one is dropped (read as absent) and flagged, rather than failing the insert.
INTEGER_LIMITS: dict[str, int] = {"ErrorCode": 2_147_483_647, "NumSegments": 32_767}
#: Keys under which the stored payload lists the fields cut or dropped.
TRUNCATED = "_truncated"
DROPPED = "_dropped"


def params_storable(params: Mapping) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The payload made storable, and what had to change: (params, flags).

    A signed text is stored whenever it can be, since it may be a STOP: NULs are replaced
    (`params_without_nul`), over-long fields cut to their column (`FIELD_WIDTHS`), integers out
    of their column's range dropped (`INTEGER_LIMITS`). `flags` lists the fields cut under
    `_truncated` and those dropped under `_dropped` (only when there are any), for the stored
    payload, so the log shows the text was not received as stored.
    """
    clean = params_without_nul(params)
    truncated = []
    for name, width in FIELD_WIDTHS.items():
        value = clean.get(name, "").strip()
        if len(value) > width:
            clean[name] = value[:width]
            truncated.append(name)
    dropped = []
    for name, limit in INTEGER_LIMITS.items():
        number = param_int(clean.get(name))
        if number is not None and number > limit:
            clean[name] = ""
            dropped.append(name)
    flags = {key: names for key, names in ((TRUNCATED, truncated), (DROPPED, dropped)) if names}
    return clean, flags


def param_text(params: Mapping, name: str) -> str:
    """A field as stripped text; a missing field is empty (Twilio omits what does not apply)."""
    return str(params.get(name) or "").strip()


def params_dict(params: Mapping) -> dict[str, str]:
    """A plain dict of the payload (a QueryDict's last value per name), for JSON storage."""
    return {str(k): str(params.get(k) or "") for k in params}


#: The largest value any integer column holds (bigint): anything above is not a number we store.
_BIGINT_MAX = 9_223_372_036_854_775_807


def param_int(value) -> int | None:
    """A non-negative integer field that fits a bigint, or None for anything else (Twilio sends
    them as text)."""
    text = str(value).strip()
    if len(text) > 40:  # beyond any bigint, and int() on huge digit strings is slow
        return None
    try:
        number = int(text)
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= _BIGINT_MAX else None


def param_small_int(value) -> int | None:
    """`param_int` that also fits a PostgreSQL smallint column, else None."""
    number = param_int(value)
    return number if number is not None and number <= 32767 else None


def param_phone(raw: str, *, tenant: Tenant) -> str:
    """A webhook's number field: E.164 when it is a valid phone number (a national one read as
    the tenant's), else as received (short codes, alphanumeric sender IDs, `whatsapp:`
    addresses), via the one parser."""
    return phone_parse_sender(raw, region=tenant_phone_region(tenant))
