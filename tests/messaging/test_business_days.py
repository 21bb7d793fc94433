"""Business-day deadlines (FCC: honour a revocation within 10 business days)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import phonenumbers
import pytest

from messaging.compliance.business_days import DEFAULT_COUNTRY, add_business_days, country_for_phone, is_business_day
from messaging.compliance.calendars import holiday_calendar, holiday_calendar_nearest
from messaging.compliance.regions import ClosedDays

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 30, tz=NEW_YORK) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=tz)


# --- is_business_day ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 11, 25), True),  # Wednesday before Thanksgiving
        (date(2026, 11, 26), False),  # Thanksgiving
        (date(2026, 11, 27), True),  # Black Friday is not a federal holiday
        (date(2026, 11, 28), False),  # Saturday
        (date(2026, 11, 29), False),  # Sunday
        (date(2026, 12, 24), True),
        (date(2026, 12, 25), False),  # Christmas (Friday)
        (date(2027, 1, 1), False),  # New Year's Day (Friday)
        (date(2026, 7, 3), False),  # Independence Day observed (the 4th is a Saturday)
        (date(2026, 7, 14), True),  # not a US holiday
    ],
)
def test_us_business_days(day, expected):
    assert is_business_day(day) is expected
    assert is_business_day(day, country="US") is expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 7, 14), False),  # Fête nationale (Tuesday)
        (date(2026, 5, 1), False),  # Fête du Travail
        (date(2026, 5, 8), False),  # Victoire 1945
        (date(2026, 5, 14), False),  # Ascension
        (date(2026, 11, 26), True),  # no Thanksgiving in France
        (date(2026, 7, 15), True),
    ],
)
def test_french_business_days(day, expected):
    assert is_business_day(day, country="FR") is expected


def test_subdivision_holidays():
    patriots_day = date(2026, 4, 20)
    assert is_business_day(patriots_day, country="US")
    assert not is_business_day(patriots_day, country="US", subdivision="MA")


def test_country_and_subdivision_are_case_insensitive():
    assert not is_business_day(date(2026, 7, 14), country="fr")
    assert not is_business_day(date(2026, 4, 20), country="us", subdivision="ma")


def test_unknown_subdivision_falls_back_to_the_country():
    assert not is_business_day(date(2026, 11, 26), country="US", subdivision="ZZ")
    assert is_business_day(date(2026, 4, 20), country="US", subdivision="ZZ")


def test_unknown_country_falls_back_to_weekends_only():
    assert is_business_day(date(2026, 12, 25), country="XX")  # a Friday
    assert not is_business_day(date(2026, 12, 26), country="XX")  # Saturday


def test_calendar_expands_to_any_year():
    assert not is_business_day(date(2031, 12, 25))
    assert not is_business_day(date(2019, 11, 28))  # Thanksgiving 2019


# --- add_business_days -------------------------------------------------------------------------


def test_ten_business_days_across_thanksgiving_2026():
    # Mon 23 Nov + 10 business days, skipping Thanksgiving (26th) and two weekends.
    assert add_business_days(at(2026, 11, 23), 10) == at(2026, 12, 8)


def test_ten_business_days_across_christmas_and_new_year_2026():
    # Fri 18 Dec: skips Christmas (Fri 25th), New Year's Day (Fri 1 Jan) and three weekends.
    assert add_business_days(at(2026, 12, 18), 10) == at(2027, 1, 5)


def test_ten_business_days_without_holidays_is_two_weeks():
    assert add_business_days(at(2026, 10, 14), 10) == at(2026, 10, 28)


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (at(2026, 11, 25), 1, at(2026, 11, 27)),  # Wed → Fri, over Thanksgiving
        (at(2026, 11, 27), 1, at(2026, 11, 30)),  # Fri → Mon
        (at(2026, 12, 24), 1, at(2026, 12, 28)),  # Thu → Mon, over Christmas and weekend
        (at(2026, 12, 31), 1, at(2027, 1, 4)),  # Thu → Mon, over New Year's Day
        (at(2026, 11, 23), 0, at(2026, 11, 23)),  # a business day + 0 is itself
        (at(2026, 11, 23), 5, at(2026, 12, 1)),
    ],
)
def test_small_steps(start, days, expected):
    assert add_business_days(start, days) == expected


def test_start_on_a_holiday_counts_from_the_next_business_day():
    # Received on Thanksgiving = received on Friday 27th.
    assert add_business_days(at(2026, 11, 26), 10) == at(2026, 12, 11)
    assert add_business_days(at(2026, 11, 27), 10) == at(2026, 12, 11)


def test_start_on_a_weekend_counts_from_the_next_business_day():
    # Received Saturday = received Monday; a day later than a Friday receipt.
    assert add_business_days(at(2026, 11, 28), 10) == at(2026, 12, 14)
    assert add_business_days(at(2026, 11, 29), 10) == at(2026, 12, 14)
    assert add_business_days(at(2026, 11, 30), 10) == at(2026, 12, 14)
    assert add_business_days(at(2026, 11, 27), 10) == at(2026, 12, 11)


def test_zero_days_from_a_non_business_day_is_the_next_business_day():
    assert add_business_days(at(2026, 12, 25, 23, 59), 0) == at(2026, 12, 28, 23, 59)
    assert add_business_days(at(2026, 11, 28), 0) == at(2026, 11, 30)


def test_french_holidays_are_skipped():
    # Mon 13 July + 1 in France skips the 14th; in the US it doesn't.
    start = at(2026, 7, 13, tz=PARIS)
    assert add_business_days(start, 1, country="FR") == at(2026, 7, 15, tz=PARIS)
    assert add_business_days(start, 1, country="US") == at(2026, 7, 14, tz=PARIS)


def test_french_may_2026_has_three_holidays_in_two_weeks():
    # Thu 30 April + 10: skips 1 May, 8 May, Ascension (14 May) and two weekends.
    start = at(2026, 4, 30, 9, 0, tz=PARIS)
    assert add_business_days(start, 10, country="FR") == at(2026, 5, 19, 9, 0, tz=PARIS)
    assert add_business_days(start, 10, country="US") == at(2026, 5, 14, 9, 0, tz=PARIS)


def test_subdivision_is_used():
    start = at(2026, 4, 17)  # Friday before Patriots' Day
    assert add_business_days(start, 1) == at(2026, 4, 20)
    assert add_business_days(start, 1, subdivision="MA") == at(2026, 4, 21)


def test_keeps_time_of_day_and_tzinfo():
    start = datetime(2026, 11, 23, 17, 45, 12, 345678, tzinfo=NEW_YORK)
    result = add_business_days(start, 10)
    assert result.tzinfo is NEW_YORK
    assert (result.hour, result.minute, result.second, result.microsecond) == (17, 45, 12, 345678)


def test_utc_offset_follows_the_new_date_across_a_dst_change():
    # US DST ends on Sunday 1 November 2026: the deadline is 09:00 EST, not 09:00 EDT.
    start = at(2026, 10, 30, 9, 0)
    result = add_business_days(start, 1)
    assert result == at(2026, 11, 2, 9, 0)
    assert start.utcoffset() == timedelta(hours=-4)
    assert result.utcoffset() == timedelta(hours=-5)


def test_fixed_offset_and_utc_timezones():
    utc_start = datetime(2026, 12, 24, 3, 0, tzinfo=UTC)
    assert add_business_days(utc_start, 1) == datetime(2026, 12, 28, 3, 0, tzinfo=UTC)
    offset = timezone(timedelta(hours=1))
    start = datetime(2026, 7, 13, 8, 0, tzinfo=offset)
    assert add_business_days(start, 1, country="FR").tzinfo is offset


def test_calendar_date_is_taken_in_the_start_timezone():
    # 02:00 UTC on Saturday 28 Nov is still Friday 27 Nov in New York.
    utc = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    local = utc.astimezone(NEW_YORK)
    assert add_business_days(local, 1) == at(2026, 11, 30, 21, 0)
    assert add_business_days(utc, 1) == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def test_naive_datetimes_stay_naive():
    result = add_business_days(datetime(2026, 11, 25, 12, 0), 1)
    assert result == datetime(2026, 11, 27, 12, 0)
    assert result.tzinfo is None


def test_negative_days_are_rejected():
    with pytest.raises(ValueError):
        add_business_days(at(2026, 11, 23), -1)


def test_unknown_country_skips_weekends_only():
    assert add_business_days(at(2026, 12, 24), 1, country="XX") == at(2026, 12, 25)


def test_result_is_always_a_business_day_and_never_earlier():
    start = at(2026, 11, 1)
    for offset in range(0, 70):
        begin = start + timedelta(days=offset)
        for days in (0, 1, 5, 10):
            result = add_business_days(begin, days)
            assert is_business_day(result.date())
            assert result >= begin


# --- country_for_phone -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+14155550100", "US"),
        ("+12025550123", "US"),
        ("+14165550123", "CA"),  # shared +1 resolved by area code
        ("+17875550123", "PR"),
        ("+33142685300", "FR"),
        ("+33612345678", "FR"),
        ("+442079460018", "GB"),
        ("+34912345678", "ES"),
        ("+4930123456", "DE"),
    ],
)
def test_country_for_phone(number, expected):
    assert country_for_phone(number) == expected


@pytest.mark.parametrize("region", ["FR", "DE", "GB", "ES", "IT", "BR", "AU", "JP", "MX", "CA"])
def test_country_for_phone_example_numbers(region):
    number = phonenumbers.format_number(phonenumbers.example_number(region), phonenumbers.PhoneNumberFormat.E164)
    assert country_for_phone(number) == region


@pytest.mark.parametrize(
    "number",
    [
        "",
        "not a number",
        "12",
        "+80012345678",  # international freephone: no country
        "+1555",  # too short to resolve
        "4155550100",  # no "+": not E.164
    ],
)
def test_country_for_phone_falls_back_to_us(number):
    assert country_for_phone(number) == DEFAULT_COUNTRY == "US"


def test_phone_country_feeds_the_deadline():
    start = at(2026, 7, 13, tz=PARIS)
    country = country_for_phone("+33142685300")
    assert add_business_days(start, 1, country=country) == at(2026, 7, 15, tz=PARIS)


def test_one_holiday_loader_for_the_gate_and_the_deadlines():
    """The gate's closed days and the business days read the same cached calendar; the gate's own
    loader used to refuse a lower-case region that the deadline's loader accepted."""
    shared = holiday_calendar("fr-57")
    assert shared is holiday_calendar("FR-57") is holiday_calendar_nearest(country="fr", subdivision="57")
    assert ClosedDays(calendars=("fr",)).calendars == ("fr",)


def test_unknown_calendars_fail_loudly_for_rules_and_fall_back_for_deadlines():
    with pytest.raises(NotImplementedError):
        holiday_calendar("XX")
    assert holiday_calendar_nearest(country="XX") is None
    assert holiday_calendar_nearest(country="US", subdivision="ZZ") is holiday_calendar("US")
