"""Phone numbers as the gate sees them: parsed once, placed in their time zones and region
(country, and for the US and Canada the state or province from the area code), cached by prefix
because parsing is the gate's hot spot."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

__all__ = [
    "CA_PROVINCES",
    "REGION_ZONES",
    "US_STATES",
    "number_parse",
    "number_place",
]


# --- Numbers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedNumber:
    """A valid number, parsed once per gate run and shared by every check that needs it."""

    e164: str
    parsed: phonenumbers.PhoneNumber
    region: str  # phonenumbers' region ("US", "RE"; "001" for non-geographic entities)


_NANP_E164 = re.compile(r"\+1[2-9]\d{9}")


def number_parse(raw: str) -> ParsedNumber | None:
    """Parse once: a number must be international (+country code) and valid.

    The gate's fast path of `tenants.phones.phone_parse` with no region (it must accept exactly
    what that accepts, as the same E.164): recipients reach the gate already parsed, so no
    national format is guessed here, and a None is the gate's ``invalid_number``."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text.startswith("+"):
        return None  # no national formats guessed: E.164 is the contract
    if _NANP_E164.fullmatch(text):
        # Already E.164 in the +1 plan (most of the traffic): building the number directly is
        # exactly what parse() would produce, and a number valid for the US is valid (that is
        # what is_valid_number finds first, at twice the cost).
        number = phonenumbers.PhoneNumber(country_code=1, national_number=int(text[2:]))
        if phonenumbers.is_valid_number_for_region(number, "US"):
            return ParsedNumber(text, number, "US")
    else:
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            return None
    # is_valid_number, keeping the region it finds: under a country code several regions share
    # (+590: Guadeloupe, Saint-Barthélemy, Saint-Martin) only the whole number says which.
    region = phonenumbers.region_code_for_number(number)
    if not region or not phonenumbers.is_valid_number_for_region(number, region):
        return None
    return ParsedNumber(f"+{number.country_code}{phonenumbers.national_significant_number(number)}", number, region)


@lru_cache(maxsize=512)
def _tz_prefix_length(country_code: int) -> int:
    """Longest time-zone data prefix for a country code: numbers sharing that many leading
    digits share their zones, so zone lookups are cached by it."""
    code = str(country_code)
    return max((len(k) for k in TIMEZONE_DATA if k.startswith(code)), default=len(code))


#: Number prefix -> time zones; bounded, cleared when full.
_ZONE_CACHE: dict[str, tuple[str, ...]] = {}
_ZONE_CACHE_MAX = 200_000
_SUBDIVISION_CACHE: dict[str, str] = {}
#: Zones of regions that share a country code with a region in another zone. phonenumbers
#: answers a mobile number with every zone of its country code (+262: Mayotte and Réunion, an
#: hour apart), though the number's region already says which one is the owner's.
REGION_ZONES: dict[str, tuple[str, ...]] = {
    "RE": ("Indian/Reunion",),
    "YT": ("Indian/Mayotte",),
}


def number_place(number: ParsedNumber) -> tuple[tuple[str, ...], str, str]:
    """(time zones, ISO country, ISO subdivision or '') of a number. Zones are cached by the
    longest time-zone prefix (numbers sharing it share their zones), subdivisions by area code."""
    zones = REGION_ZONES.get(number.region)
    if zones is None:
        key = number.e164[1 : 1 + _tz_prefix_length(number.parsed.country_code)]
        zones = _ZONE_CACHE.get(key)
        if zones is None:
            found = phone_timezone.time_zones_for_number(number.parsed)
            if len(_ZONE_CACHE) >= _ZONE_CACHE_MAX:
                _ZONE_CACHE.clear()
            zones = _ZONE_CACHE[key] = tuple(sorted({z for z in found if z != "Etc/Unknown"}))
    return zones, number.region, _subdivision(number, number.region)


US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS",
    "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA",
    "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT",
    "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM",
    "New York": "NY", "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Washington D.C.": "DC", "District of Columbia": "DC",
}  # fmt: skip
CA_PROVINCES = {
    "Alberta": "AB", "British Columbia": "BC", "Manitoba": "MB", "New Brunswick": "NB",
    "Newfoundland and Labrador": "NL", "Nova Scotia": "NS", "Ontario": "ON",
    "Prince Edward Island": "PE", "Quebec": "QC", "Saskatchewan": "SK",
    "Northwest Territories": "NT", "Nunavut": "NU", "Yukon": "YT",
}  # fmt: skip
_STATE_SUFFIX = re.compile(r",\s*([A-Z]{2})$")


def _subdivision(number: ParsedNumber, country: str) -> str:
    """ISO 3166-2 subdivision ("US-FL") of a US or Canadian number, from its area code; ''
    elsewhere or when the area code isn't tied to one state (toll-free, non-geographic)."""
    if country not in ("US", "CA"):
        return ""
    key = number.e164[:5]  # +1 and the area code: area codes never cross state lines
    found = _SUBDIVISION_CACHE.get(key)
    if found is None:
        text = geocoder.description_for_number(number.parsed, "en").strip()
        codes = US_STATES if country == "US" else CA_PROVINCES
        code = ""
        if match := _STATE_SUFFIX.search(text):
            code = match.group(1)
        elif text in codes:
            code = codes[text]
        found = _SUBDIVISION_CACHE[key] = f"{country}-{code}" if code else ""
    return found
