"""What the law says per region (statutory windows, caps and closed days) and how regions are
named, as data: the gate, the sending policy form and its page all read these."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import time, timedelta
from functools import lru_cache

import phonenumbers
from phonenumbers import geocoder

from .calendars import holiday_calendar
from .numbers import CA_PROVINCES, US_STATES

__all__ = [
    "FRENCH_LAW_REGIONS",
    "FREQUENCY_WINDOW",
    "STATUTORY_CAPS",
    "STATUTORY_CLOSED_DAYS",
    "STATUTORY_WINDOWS",
    "ClosedDays",
    "RegionRules",
    "StatutoryRule",
    "region_name",
    "statutory_rules",
]


#: The frequency cap's window.
FREQUENCY_WINDOW = timedelta(hours=24)
#: French law covers the overseas departments and the collectivities of Saint-Barthélemy,
#: Saint-Martin and Saint-Pierre-et-Miquelon, which phonenumbers places in regions of their own
#: (+262 RE and YT, +590 GP, BL and MF, +594 GF, +596 MQ, +508 PM): region -> the `holidays`
#: calendar of its public holidays (each overseas one adds its own, e.g. abolition of slavery).
#: New Caledonia, French Polynesia and Wallis and Futuna make their own consumer law: not here.
FRENCH_LAW_REGIONS: dict[str, str] = {
    "FR": "FR",
    "GP": "FR-971",
    "MQ": "FR-972",
    "GF": "FR-973",
    "RE": "FR-974",
    "YT": "FR-976",
    "BL": "FR-BL",
    "MF": "FR-MF",
    "PM": "FR-PM",
}
#: Local-time windows the law imposes, whatever the tenant configured (DOMAIN.md: Florida and
#: Oklahoma allow 8:00-20:00, France 8:00-22:00). Applied on top of the policy's own window and
#: region windows. Keys: a country ("FR") or an ISO 3166-2 subdivision ("US-FL").
STATUTORY_WINDOWS: dict[str, tuple[str, str]] = {
    "US-FL": ("08:00", "20:00"),
    "US-OK": ("08:00", "20:00"),
    **{region: ("08:00", "22:00") for region in FRENCH_LAW_REGIONS},
}
#: The most restricted-purpose messages per number per `FREQUENCY_WINDOW` the law allows, whatever
#: the tenant's own `frequency_cap` (DOMAIN.md: Florida and Oklahoma, 3 "on the same matter", read
#: as "from the same tenant"). Keys as in `STATUTORY_WINDOWS`.
STATUTORY_CAPS: dict[str, int] = {
    "US-FL": 3,
    "US-OK": 3,
}


@dataclass(frozen=True)
class ClosedDays:
    """Local days on which restricted-purpose messages never go to a region: `weekdays`
    (Monday 0 ... Sunday 6) and the public holidays of the `holidays` calendars named in
    `calendars` ("FR", or "country-subdivision" such as "FR-57")."""

    weekdays: frozenset[int] = frozenset()
    calendars: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.weekdays < frozenset(range(7)):
            raise ValueError("ClosedDays.weekdays must be a subset of 0-6 that leaves some day open")
        for code in self.calendars:
            holiday_calendar(code)  # an unknown calendar fails here, not in a bulk send

    def __or__(self, other: ClosedDays) -> ClosedDays:
        return ClosedDays(self.weekdays | other.weekdays, tuple(dict.fromkeys(self.calendars + other.calendars)))


#: Whole local days the law closes, by region (DOMAIN.md: France, no Sundays and no public
#: holidays, overseas included). Keys as in `STATUTORY_WINDOWS`.
STATUTORY_CLOSED_DAYS: dict[str, ClosedDays] = {
    region: ClosedDays(weekdays=frozenset({6}), calendars=(holidays_calendar,))
    for region, holidays_calendar in FRENCH_LAW_REGIONS.items()
}


@dataclass(frozen=True, slots=True)
class RegionRules:
    """The rules for one region (a country, or a country and a subdivision) in one gate run:
    the local `window`, the days the law `closed`, the `cap` (0: none), the `law`'s own window
    (None where no statute sets one), and the tenant's settings the gate could not apply there,
    which only data saved before the form refused them can hold: `policy_window_disjoint`, the
    policy's window misses the law's altogether, so the law's applies instead (wider than the
    tenant asked: the page flags it, the gate logs it); `lines_ignored`, region lines that
    would have closed the window altogether."""

    window: tuple[time, time]
    closed: ClosedDays | None
    cap: int
    law: tuple[time, time] | None = None
    policy_window_disjoint: bool = False
    lines_ignored: tuple[str, ...] = ()


# --- Describing the rules (the sending policy page) ---------------------------------------------
# Read from the same data and the same `_Rules` the gate decides with, so the page can't drift.


@lru_cache(maxsize=512)
def region_name(code: str) -> str | None:
    """English name of a region the gate can tell numbers apart by: a country ("FR": "France") or
    a US/Canadian subdivision ("US-FL": "Florida"). None when no number is ever placed there: an
    unknown country, or a subdivision elsewhere (only US and Canadian area codes name one)."""
    country, dash, subdivision = code.partition("-")
    if not dash:
        if country not in phonenumbers.SUPPORTED_REGIONS:
            return None
        # phonenumbers' own names, by region: an example number would not do for regions sharing
        # their numbers (+590: Saint-Barthélemy's example is also Guadeloupe's). "*xx": as in xx.
        names = geocoder.LOCALE_DATA.get(country, {})
        name = names.get("en", "")
        if name.startswith("*"):
            name = names.get(name[1:], "")
        return name or country
    names = {"US": US_STATES, "CA": CA_PROVINCES}.get(country, {})
    return next((name for name, short in names.items() if short == subdivision), None)


@dataclass(frozen=True)
class StatutoryRule:
    """What the law imposes in one region, whatever the tenant's policy says."""

    region: str
    name: str
    window: tuple[str, str] | None
    cap: int | None
    closed: ClosedDays | None

    @property
    def summary(self) -> str:
        """e.g. "Florida (US-FL): 08:00–20:00, at most 3 per 24 h"."""
        parts = []
        if self.window:
            parts.append(f"{self.window[0]}–{self.window[1]}")
        if self.cap:
            parts.append(f"at most {self.cap} per {FREQUENCY_WINDOW.total_seconds() / 3600:g} h")
        if self.closed:
            days = [f"{calendar.day_name[d]}s" for d in sorted(self.closed.weekdays)]
            for code in self.closed.calendars:
                country, _, subdivision = code.partition("-")
                place = region_name(country) or country
                days.append(f"public holidays in {place}{f' ({subdivision})' if subdivision else ''}")
            parts.append("never on " + " or ".join(days))
        return f"{self.name} ({self.region}): {', '.join(parts)}"


def statutory_rules() -> list[StatutoryRule]:
    """One `StatutoryRule` per region named in `STATUTORY_WINDOWS`, `STATUTORY_CAPS` or
    `STATUTORY_CLOSED_DAYS`, by region code."""
    codes = sorted({*STATUTORY_WINDOWS, *STATUTORY_CAPS, *STATUTORY_CLOSED_DAYS})
    return [
        StatutoryRule(
            region=code,
            name=region_name(code) or code,
            window=STATUTORY_WINDOWS.get(code),
            cap=STATUTORY_CAPS.get(code),
            closed=STATUTORY_CLOSED_DAYS.get(code),
        )
        for code in codes
    ]
