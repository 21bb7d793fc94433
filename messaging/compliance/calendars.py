"""Public holiday calendars, loaded once: the gate's closed days (France: no messages on public
holidays) and the revocation deadline's business days read the same cached objects.

Building a `holidays` calendar is slow and the objects fill in year by year on demand, so each
region's calendar is built once per process and shared.
"""

from __future__ import annotations

from functools import lru_cache

import holidays

__all__ = ["holiday_calendar", "holiday_calendar_nearest"]


@lru_cache(maxsize=256)
def _calendar_or_none(code: str) -> holidays.HolidayBase | None:
    country, _, subdivision = code.partition("-")
    try:
        return holidays.country_holidays(country, subdiv=subdivision or None)
    except NotImplementedError:  # a country or subdivision `holidays` does not know
        return None


def holiday_calendar(code: str) -> holidays.HolidayBase:
    """Public holidays of a region, "FR" or "country-subdivision" ("US-FL", "FR-57"), any case.

    Raises NotImplementedError for a region `holidays` does not know: statutory rules name
    their calendars as data, and a typo there must fail loudly, not close no day at all.
    """
    calendar = _calendar_or_none(code.upper())
    if calendar is None:
        raise NotImplementedError(f"No public holiday calendar for {code!r}")
    return calendar


def holiday_calendar_nearest(*, country: str, subdivision: str | None = None) -> holidays.HolidayBase | None:
    """The subdivision's calendar, else the country's, else None (weekends only).

    For deadlines: an unknown subdivision or country gives an *earlier* deadline than the true
    one, never a later one, which is the safe side for a legal deadline.
    """
    if subdivision and (calendar := _calendar_or_none(f"{country}-{subdivision}".upper())) is not None:
        return calendar
    return _calendar_or_none(country.upper())
