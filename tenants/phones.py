"""Phone numbers: E.164 normalisation (phonenumbers) and the masked form support staff see.

The display rule lives here, once (`phone_for_viewer`), for pages, downloads and JSON alike: a
tenant's own Twilio numbers are public business numbers, shown whole to everyone with access;
a customer's number is masked for support staff unless they unmask it (audited).
"""

from __future__ import annotations

from collections.abc import Container

import phonenumbers
from django.core.exceptions import ValidationError

DEFAULT_REGION = "US"


def phone_normalize(raw: str, *, region: str = DEFAULT_REGION) -> str:
    """Return `raw` as E.164, or raise ValidationError saying why it is not a valid number."""
    text = (raw or "").strip()
    if not text:
        raise ValidationError("Enter a phone number.", code="required")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(
            "“%(value)s” is not a phone number (%(why)s).",
            code="invalid",
            params={"value": text[:40], "why": str(exc).split(". ", 1)[-1].rstrip(".")},
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(
            "“%(value)s” is not a valid number: use international format, e.g. +14155550123.",
            code="invalid",
            params={"value": text[:40]},
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_is_valid(raw: str) -> bool:
    try:
        phone_normalize(raw)
    except ValidationError:
        return False
    return True


def phone_mask(value: str) -> str:
    """Mask a number keeping its country code and last 4 digits, same length.

    `+14155554567` → `+1******4567`. Anything that isn't a parseable E.164 number is masked
    whole except its last 4 characters, so a malformed value never leaks either.
    """
    if not value:
        return ""
    text = str(value)
    country = ""
    if text.startswith("+"):
        try:
            country = str(phonenumbers.parse(text, None).country_code)
        except phonenumbers.NumberParseException:
            country = ""
    prefix = "+" + country if country else ""
    body = text[len(prefix) :]
    keep = 4 if len(body) > 4 else max(len(body) - 2, 0)
    return prefix + "*" * (len(body) - keep) + body[len(body) - keep :]


def phone_for_viewer(value: str | None, *, access, own_numbers: Container[str] = ()) -> str:
    """`value` as this viewer may see it: whole, or masked for support staff.

    `access` is the viewer's `TenantAccess` (None outside a tenant: nothing to mask against);
    `own_numbers` the tenant's own numbers (`tenants.numbers.tenant_own_numbers`), which are
    never masked because the tenant publishes them.
    """
    if not value:
        return ""
    text = str(value)
    if access is None or not access.masks_numbers or text in own_numbers:
        return text
    return phone_mask(text)
