"""Business-day arithmetic for compliance deadlines.

The FCC (order 24-24) requires a revocation of consent to be honoured within 10 *business* days.
What counts as a business day depends on the recipient's country (and sometimes region), so
public holidays come from the ``holidays`` package rather than a hand-kept list.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import phonenumbers

from .calendars import holiday_calendar_nearest

__all__ = ["DEFAULT_COUNTRY", "add_business_days", "country_for_phone", "is_business_day"]

DEFAULT_COUNTRY = "US"

#: Used when ``holidays`` does not know a country: Saturday and Sunday only.
_DEFAULT_WEEKEND = frozenset({5, 6})


def is_business_day(day: date, *, country: str = DEFAULT_COUNTRY, subdivision: str | None = None) -> bool:
    """Whether ``day`` is neither a weekend day nor a public holiday in ``country``.

    Weekends follow the country's own definition (e.g. Friday-Saturday where that applies),
    including any weekend days a country declares working days.
    """
    calendar = holiday_calendar_nearest(country=country, subdivision=subdivision)
    if calendar is None:
        return day.weekday() not in _DEFAULT_WEEKEND
    if day in calendar:  # also makes the calendar populate that year
        return False
    return calendar.is_working_day(day)


def add_business_days(
    start: datetime,
    days: int,
    *,
    country: str = DEFAULT_COUNTRY,
    subdivision: str | None = None,
) -> datetime:
    """``start`` moved forward by ``days`` business days, keeping its time of day and tzinfo.

    A start on a weekend or holiday counts as if it happened on the next business day (the
    request is received when the business next opens), so a revocation received on a Saturday
    has the same deadline as one received on the following Monday. ``days=0`` gives ``start``
    itself, or that next business day when ``start`` is not one.

    The calendar date is taken in ``start``'s own timezone: pass ``start`` in the recipient's
    (or business's) local time for local holidays to line up.
    """
    if days < 0:
        raise ValueError("days must be zero or positive")
    current = start.date()
    while not is_business_day(current, country=country, subdivision=subdivision):
        current += timedelta(days=1)
    remaining = days
    while remaining:
        current += timedelta(days=1)
        if is_business_day(current, country=country, subdivision=subdivision):
            remaining -= 1
    # replace() keeps tzinfo; with zoneinfo the UTC offset is recomputed for the new date.
    return start.replace(year=current.year, month=current.month, day=current.day)


def country_for_phone(e164: str) -> str:
    """ISO 3166 country code of a phone number's region, e.g. "+33142685300" → "FR".

    Shared calling codes are resolved by phonenumbers (+1 416… is "CA", +1 787… is "PR").
    Numbers that cannot be parsed or belong to no country (+800 freephone, …) give "US",
    the portal's home market.
    """
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return DEFAULT_COUNTRY
    region = phonenumbers.region_code_for_number(number)
    if not region or region in ("ZZ", "001"):
        return DEFAULT_COUNTRY
    return region
