"""Phone numbers: the one parser to E.164 every form, import, upload and webhook uses, and the
masked form support staff see.

One rule: a number in international format (+ and country code) is always understood; a national
number ("(415) 555-0123") only with an explicit region, the tenant's (`tenant_phone_region`),
because guessing a country turns a typo into someone else's number. Errors are the portal's own
words with an example, never phonenumbers' exception text.

The display rule lives here too, once (`phone_for_viewer`), for pages, downloads and JSON alike:
a tenant's own Twilio numbers are public business numbers, shown whole to everyone with access;
a customer's number is masked for support staff unless they unmask it (audited). Free text
(a Twilio failure reason, a body, a note) goes through `phone_text_for_viewer`, which finds the
numbers inside it and applies the same rule to each.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Container
from functools import lru_cache
from importlib import resources
from pathlib import Path

import phonenumbers
from django.core.exceptions import ValidationError

#: The region when a tenant's time zone names no country (UTC): the portal's home market.
DEFAULT_REGION = "US"
EXAMPLE = "+14155550123"
_INTERNATIONAL = f"Enter it in international format, like {EXAMPLE}."


def phone_parse(raw: str, *, region: str | None = None) -> str:
    """`raw` as E.164, or a ValidationError saying what is wrong, with an example.

    Without `region` only international numbers are accepted; with it a national number is
    read as one of that region (pass the tenant's: `tenant_phone_region`).
    """
    text = (raw or "").strip()
    if not text:
        raise ValidationError(f"Enter a phone number in international format, like {EXAMPLE}.", code="required")
    shown = {"value": text[:40]}
    if region is None and not text.startswith("+") and phonenumbers.is_possible_number_string(text, DEFAULT_REGION):
        raise ValidationError("“%(value)s” has no country code. " + _INTERNATIONAL, code="international", params=shown)
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(
            "“%(value)s” is not a phone number. " + _INTERNATIONAL, code="invalid", params=shown
        ) from exc
    if not phonenumbers.is_valid_number(number):
        if region and not text.startswith("+"):
            message = "“%(value)s” is not a valid number for %(region)s. " + _INTERNATIONAL
            raise ValidationError(message, code="invalid", params={**shown, "region": region.upper()})
        raise ValidationError("“%(value)s” is not a valid number. " + _INTERNATIONAL, code="invalid", params=shown)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_parse_sender(raw: str, *, region: str | None = None) -> str:
    """A number as Twilio reports it in a webhook: E.164 when it is a valid phone number,
    otherwise as received, cut to 32 characters. Twilio legitimately sends short codes
    ("12345"), alphanumeric sender IDs ("ACME") and ``whatsapp:`` addresses, which are kept."""
    if not raw:
        return ""
    try:
        return phone_parse(raw, region=region)
    except ValidationError:
        return raw[:32]


def tenant_phone_region(tenant) -> str:
    """The region a tenant's national numbers belong to: the country of its time zone
    (America/New_York: US, Europe/Paris: FR), else `DEFAULT_REGION`. Tenants have no country
    field; their time zone is the setting that already says where they are."""
    return _zone_countries().get(tenant.timezone, DEFAULT_REGION)


def form_phone_region_set(form, *, region: str) -> None:
    """Read national numbers typed into `form`'s phone fields (fields with a `region`
    attribute, like messaging's PhoneField) as numbers of `region`: forms built without their
    tenant get it from the view this way, before validation."""
    for field in form.fields.values():
        if hasattr(field, "region"):
            field.region = region


@lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    """Time zone -> ISO country, from the IANA `zone.tab` (tzdata package, else the system's)."""
    candidates = [Path(base) / "zone.tab" for base in zoneinfo.TZPATH]
    try:
        candidates.insert(0, Path(str(resources.files("tzdata").joinpath("zoneinfo", "zone.tab"))))
    except ModuleNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            rows = (line.split("\t") for line in path.read_text(encoding="utf-8").splitlines())
            return {row[2]: row[0] for row in rows if len(row) >= 3 and not row[0].startswith("#")}
    return {}


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


#: A number written compactly after a plus, raw or URL-encoded (once or twice): Twilio's error
#: texts quote the request URL (`Messages.json?To=%2B14155550100`). Masked whether or not it is
#: a valid number, since a malformed customer number is still theirs.
_PLUS_NUMBER = re.compile(r"(\+|%2[Bb]|%252[Bb])(\d{7,15})(?!\d)")
#: Digits only, 10 to 15 of them, standing alone: masked when they read as a phone number.
_DIGIT_RUN = re.compile(r"(?<![\w*%+])\d{10,15}(?![\w*])")


def _digits_e164(digits: str, *, region: str) -> str | None:
    """The E.164 form of a bare digit run, when it is a valid number (international or of `region`)."""
    for text, hint in (("+" + digits, None), (digits, region)):
        try:
            number = phonenumbers.parse(text, hint)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def phone_text_mask(
    text: str, *, own_numbers: Container[str] = (), region: str = DEFAULT_REGION, national: bool = True
) -> str:
    """`text` with every phone number in it masked (`phone_mask`), except `own_numbers`.

    Catches E.164 (also URL-encoded, `%2B1…`), bare digit runs that are valid numbers, and,
    with `national`, numbers written the national way ("(415) 555-0100", read as numbers of
    `region`); log lines skip that last search, the slow one, on every request. Masked output
    keeps the country code and last 4 digits, like every masked number in the portal.
    """
    if not text:
        return text or ""

    def plus(match: re.Match) -> str:
        prefix, digits = match.groups()
        if "+" + digits in own_numbers:
            return match.group(0)
        return prefix + phone_mask("+" + digits)[1:]

    def run(match: re.Match) -> str:
        e164 = _digits_e164(match.group(0), region=region)
        if e164 is None or e164 in own_numbers:
            return match.group(0)
        return phone_mask(e164)[-len(match.group(0)) :]

    masked = _DIGIT_RUN.sub(run, _PLUS_NUMBER.sub(plus, str(text)))
    if not national:
        return masked
    pieces, at = [], 0
    for found in phonenumbers.PhoneNumberMatcher(masked, region, leniency=phonenumbers.Leniency.VALID):
        e164 = phonenumbers.format_number(found.number, phonenumbers.PhoneNumberFormat.E164)
        if e164 in own_numbers:
            continue
        pieces += [masked[at : found.start], phone_mask(e164)]
        at = found.end
    return "".join(pieces) + masked[at:]


def phone_text_for_viewer(
    text: str | None, *, access, own_numbers: Container[str] = (), region: str = DEFAULT_REGION
) -> str:
    """Free text (a failure reason, a body, a note) as this viewer may see it: unchanged, or
    with the customer numbers inside it masked for support staff (`phone_for_viewer`'s rule:
    the tenant's own numbers stay whole). Twilio quotes the number it refused in its error
    texts, so without this a failure reason would show support what the To column hides."""
    if not text:
        return ""
    if access is None or not access.masks_numbers:
        return str(text)
    return phone_text_mask(str(text), own_numbers=own_numbers, region=region)
