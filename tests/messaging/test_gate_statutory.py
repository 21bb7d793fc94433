"""Rules the law sets whatever the tenant configured: Florida's and Oklahoma's 3 messages per 24 h,
France's 08:00-22:00 window with no Sundays and no public holidays (DOMAIN.md, Compliance), overseas
departments and collectivities included, each in its own zone and with its own holidays.

Clocks are fixed: every check passes `now`, built from a local wall time in the recipient's zone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.compliance import gate, numbers, regions
from messaging.compliance.gate import GateVerdict, gate_check, gate_check_many, gate_evaluate
from messaging.compliance.numbers import number_parse
from messaging.compliance.policy import sending_policy_get
from messaging.compliance.regions import ClosedDays
from messaging.models import GateDecision, GateReason
from tests.messaging.sending_support import FL, NY, OK, SF, grant_marketing, sent_marketing

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
PARIS = ZoneInfo("Europe/Paris")
FR_MOBILE = "+33612345678"  # no place in the number: phonenumbers gives Europe/Paris
FR_PARIS = "+33142685300"  # a Paris landline
# French law overseas: phonenumbers gives each its own region (not FR) and its own zone.
REUNION_MOBILE = "+262692123456"  # RE; +262 also serves Mayotte, an hour behind
MAYOTTE_MOBILE = "+262639012345"  # YT
GUADELOUPE_MOBILE = "+590690123456"  # GP; +590 also serves Saint-Barthélemy and Saint-Martin
SAINT_BARTH = "+590590271234"  # BL, a landline
MARTINIQUE_MOBILE = "+596696123456"  # MQ
GUYANE_MOBILE = "+594694123456"  # GF
MIQUELON = "+508551234"  # PM
REUNION = ZoneInfo("Indian/Reunion")
MAYOTTE = ZoneInfo("Indian/Mayotte")
GUADELOUPE = ZoneInfo("America/Guadeloupe")
SEND = GateVerdict(GateDecision.SEND, "", None)


def local(zone: ZoneInfo, day: str, hour: int, minute: int = 0) -> datetime:
    """`day` (ISO date) at a wall time in `zone`, as UTC."""
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=zone).astimezone(UTC)


def defer(reason: str, send_after: datetime) -> GateVerdict:
    return GateVerdict(GateDecision.DEFER, reason, send_after)


def policy_set(tenant, **fields) -> None:
    policy = sending_policy_get(tenant=tenant)
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.save()


def marketing(tenant, phone: str, now: datetime) -> GateVerdict:
    return gate_check(tenant=tenant, to=phone, purpose="marketing", now=now)


# --- Florida and Oklahoma: at most 3 per 24 h -------------------------------------------------------


@pytest.mark.parametrize(("phone", "zone"), [(FL, NEW_YORK), (OK, CHICAGO)])
def test_fourth_marketing_message_in_24h_is_deferred_even_with_a_tenant_cap_of_10(tenant, phone, zone):
    policy_set(tenant, frequency_cap=10)
    grant_marketing(tenant, phone)
    now = local(zone, "2025-06-10", 12)  # a Tuesday noon: inside every window
    oldest = now - timedelta(hours=20)
    for accepted_at in (oldest, now - timedelta(hours=5), now - timedelta(hours=1)):
        sent_marketing(tenant, phone, accepted_at=accepted_at)
    assert marketing(tenant, phone, now) == defer(GateReason.FREQUENCY_CAP, oldest + timedelta(hours=24))


def test_california_gets_its_fourth_message_under_a_tenant_cap_of_10(tenant):
    policy_set(tenant, frequency_cap=10)
    grant_marketing(tenant, SF)
    now = local(LOS_ANGELES, "2025-06-10", 12)
    for hours_ago in (20, 5, 1):
        sent_marketing(tenant, SF, accepted_at=now - timedelta(hours=hours_ago))
    assert marketing(tenant, SF, now) == SEND


def test_third_message_in_24h_still_goes_to_florida(tenant):
    policy_set(tenant, frequency_cap=10)
    grant_marketing(tenant, FL)
    now = local(NEW_YORK, "2025-06-10", 12)
    for hours_ago in (20, 5):
        sent_marketing(tenant, FL, accepted_at=now - timedelta(hours=hours_ago))
    sent_marketing(tenant, FL, accepted_at=now - timedelta(hours=25))  # a day and more ago
    assert marketing(tenant, FL, now) == SEND


def test_statutory_cap_applies_when_the_tenant_has_no_cap_and_a_lower_tenant_cap_wins(tenant):
    for phone in (FL, SF):
        grant_marketing(tenant, phone)
    now = local(NEW_YORK, "2025-06-10", 14)
    oldest = now - timedelta(hours=5)  # 09:00: a day later Florida's window is open
    for phone in (FL, SF):
        for accepted_at in (oldest, now - timedelta(hours=2), now - timedelta(hours=1)):
            sent_marketing(tenant, phone, accepted_at=accepted_at)

    policy_set(tenant, frequency_cap=0)  # 0: the tenant caps nothing; Florida's law still does
    assert gate_check_many(tenant=tenant, recipients=[FL, SF], purpose="marketing", now=now) == {
        FL: defer(GateReason.FREQUENCY_CAP, oldest + timedelta(hours=24)),
        SF: SEND,
    }
    policy_set(tenant, frequency_cap=2)  # below the law's 3: the tenant's cap decides
    assert marketing(tenant, FL, now) == defer(GateReason.FREQUENCY_CAP, now - timedelta(hours=2) + timedelta(days=1))


def test_transactional_and_otp_to_florida_are_never_capped(tenant):
    grant_marketing(tenant, FL)
    now = local(NEW_YORK, "2025-06-10", 12)
    for hours_ago in range(1, 6):
        sent_marketing(tenant, FL, accepted_at=now - timedelta(hours=hours_ago))
        sent_marketing(tenant, FL, accepted_at=now - timedelta(hours=hours_ago), purpose="transactional")
    assert marketing(tenant, FL, now).reason == GateReason.FREQUENCY_CAP
    for purpose in ("transactional", "otp"):
        assert gate_check(tenant=tenant, to=FL, purpose=purpose, now=now) == SEND


def test_informational_counts_when_it_follows_marketing_rules(tenant):
    policy_set(tenant, frequency_cap=0, informational_follows_marketing_rules=True)
    now = local(NEW_YORK, "2025-06-10", 12)
    for hours_ago in (3, 2, 1):
        sent_marketing(tenant, FL, accepted_at=now - timedelta(hours=hours_ago), purpose="informational")
    assert gate_check(tenant=tenant, to=FL, purpose="informational", now=now) == defer(
        GateReason.FREQUENCY_CAP, now + timedelta(hours=21)
    )


def test_a_batch_counts_its_own_rows_against_florida_law(tenant):
    policy_set(tenant, frequency_cap=0)
    for phone in (FL, SF):
        grant_marketing(tenant, phone)
    now = local(NEW_YORK, "2025-06-10", 12)
    results = gate_evaluate(tenant=tenant, recipients=[FL] * 4 + [SF] * 4, purpose="marketing", now=now)
    assert [verdict for _, verdict in results] == [SEND] * 3 + [
        defer(GateReason.FREQUENCY_CAP, now + timedelta(hours=24))
    ] + [SEND] * 4


def test_a_capped_florida_number_at_night_gives_quiet_hours_first(tenant):
    grant_marketing(tenant, FL)
    now = local(NEW_YORK, "2025-06-10", 20, 30)  # after Florida's 20:00
    oldest = local(NEW_YORK, "2025-06-10", 9)  # its 24 h end at 09:00 tomorrow, after 08:00
    for accepted_at in (oldest, oldest + timedelta(hours=1), oldest + timedelta(hours=2)):
        sent_marketing(tenant, FL, accepted_at=accepted_at)
    policy_set(tenant, frequency_cap=10)
    assert marketing(tenant, FL, now) == defer(GateReason.QUIET_HOURS, oldest + timedelta(hours=24))


# --- France: 08:00-22:00, no Sundays, no public holidays ------------------------------------------


@pytest.fixture
def wide_policy(tenant):
    """A tenant window wider than France's, so the law's 08:00-22:00 is what binds."""
    policy_set(tenant, quiet_start="07:00", quiet_end="23:00")
    grant_marketing(tenant, FR_MOBILE)
    return tenant


def test_french_number_on_a_sunday_waits_for_monday_eight(wide_policy):
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-06-15", 11)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, "2025-06-16", 8)
    )


def test_french_number_on_bastille_day_waits_for_the_next_morning(wide_policy):
    assert datetime(2025, 7, 14).weekday() == 0  # a Monday
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-07-14", 11)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, "2025-07-15", 8)
    )
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-07-15", 11)) == SEND


def test_french_window_is_eight_to_ten_whatever_a_wider_tenant_window_says(wide_policy):
    tuesday = "2025-06-10"
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, tuesday, 21, 30)) == SEND
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, tuesday, 22)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, "2025-06-11", 8)
    )
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, tuesday, 7, 30)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, tuesday, 8)
    )
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-06-14", 11)) == SEND  # Saturdays are open


def test_french_number_at_2130_under_the_default_policy_waits_for_the_tenant_window(tenant):
    """The tenant's default 08:00-21:00 is narrower than France's 08:00-22:00 and still applies."""
    grant_marketing(tenant, FR_MOBILE)
    assert marketing(tenant, FR_MOBILE, local(PARIS, "2025-06-10", 21, 30)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, "2025-06-11", 8)
    )
    policy_set(tenant, quiet_end="22:00")
    assert marketing(tenant, FR_MOBILE, local(PARIS, "2025-06-10", 21, 30)) == SEND


def test_saturday_night_waits_for_monday_or_tuesday_after_a_holiday_monday(wide_policy):
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-06-14", 22, 30)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, "2025-06-16", 8)
    )
    # 9 June 2025 is Whit Monday: Sunday, then a holiday.
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-06-07", 22, 30)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, "2025-06-10", 8)
    )


def test_closed_sunday_across_the_spring_clock_change(wide_policy):
    # Sunday 30 March 2025 the clocks go forward in Paris: Monday 08:00 is CEST.
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-03-29", 22, 30)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, "2025-03-31", 8)
    )
    assert local(PARIS, "2025-03-31", 8) == datetime(2025, 3, 31, 6, tzinfo=UTC)


def test_tenant_region_window_narrows_france_further_and_cannot_widen_it(wide_policy):
    policy_set(wide_policy, region_windows={"FR": ["09:00", "20:00"]})
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-06-10", 8, 30)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, "2025-06-10", 9)
    )
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-06-10", 20, 30)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, "2025-06-11", 9)
    )
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-06-14", 20, 30)) == defer(
        GateReason.QUIET_HOURS, local(PARIS, "2025-06-16", 9)
    )
    policy_set(wide_policy, region_windows={"FR": ["06:00", "23:30"]})
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-06-10", 22, 15)).reason == GateReason.QUIET_HOURS
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, "2025-06-15", 12)).reason == GateReason.QUIET_HOURS


def test_otp_and_transactional_go_on_french_sundays_and_holidays(wide_policy):
    for day in ("2025-06-15", "2025-07-14"):
        for purpose in ("otp", "transactional", "informational"):
            assert gate_check(tenant=wide_policy, to=FR_MOBILE, purpose=purpose, now=local(PARIS, day, 23)) == SEND
    policy_set(wide_policy, informational_follows_marketing_rules=True)
    assert gate_check(
        tenant=wide_policy, to=FR_MOBILE, purpose="informational", now=local(PARIS, "2025-06-15", 11)
    ) == defer(GateReason.QUIET_HOURS, local(PARIS, "2025-06-16", 8))


def test_french_holidays_are_french_only(tenant):
    """14 July closes France, not New York."""
    grant_marketing(tenant, NY)
    assert marketing(tenant, NY, local(NEW_YORK, "2025-07-14", 12)) == SEND
    assert marketing(tenant, NY, local(NEW_YORK, "2025-06-15", 12)) == SEND  # nor Sundays


def test_closed_days_are_checked_as_data():
    with pytest.raises(ValueError, match="leaves some day open"):
        ClosedDays(weekdays=frozenset(range(7)))
    with pytest.raises(NotImplementedError):
        ClosedDays(calendars=("XX",))
    assert ClosedDays(frozenset({6}), ("FR",)) | ClosedDays(frozenset({5}), ("FR",)) == ClosedDays(
        frozenset({5, 6}), ("FR",)
    )


# --- France overseas: the same law, in the recipient's own zone and with local holidays -------------


@pytest.mark.parametrize(
    ("phone", "zone"),
    [
        (REUNION_MOBILE, REUNION),
        (MAYOTTE_MOBILE, MAYOTTE),
        (GUADELOUPE_MOBILE, GUADELOUPE),
        (SAINT_BARTH, GUADELOUPE),
        (MARTINIQUE_MOBILE, ZoneInfo("America/Martinique")),
        (GUYANE_MOBILE, ZoneInfo("America/Cayenne")),
        (MIQUELON, ZoneInfo("America/Miquelon")),
    ],
)
def test_overseas_french_numbers_wait_for_monday_eight_local(wide_policy, phone, zone):
    grant_marketing(wide_policy, phone)
    sunday, monday = "2025-06-15", "2025-06-16"
    assert marketing(wide_policy, phone, local(zone, sunday, 11)) == defer(
        GateReason.QUIET_HOURS, local(zone, monday, 8)
    )
    assert marketing(wide_policy, phone, local(zone, "2025-06-14", 22, 30)) == defer(  # Saturday night
        GateReason.QUIET_HOURS, local(zone, monday, 8)
    )
    assert marketing(wide_policy, phone, local(zone, monday, 21, 59)) == SEND


def test_a_reunion_mobile_is_judged_in_reunion_time_not_also_in_mayotte_time(wide_policy):
    """phonenumbers lists both +262 zones for a mobile; 08:00 in Réunion is 07:00 in Mayotte."""
    grant_marketing(wide_policy, REUNION_MOBILE)
    assert marketing(wide_policy, REUNION_MOBILE, local(REUNION, "2025-06-16", 8)) == SEND
    assert marketing(wide_policy, REUNION_MOBILE, local(REUNION, "2025-06-16", 7, 59)) == defer(
        GateReason.QUIET_HOURS, local(REUNION, "2025-06-16", 8)
    )


@pytest.mark.parametrize(
    ("phone", "zone", "holiday", "next_day"),
    [
        (REUNION_MOBILE, REUNION, "2024-12-20", "2024-12-21"),  # abolition of slavery (a Friday): Saturday
        (GUADELOUPE_MOBILE, GUADELOUPE, "2025-05-27", "2025-05-28"),  # abolition of slavery (a Tuesday)
        (MAYOTTE_MOBILE, MAYOTTE, "2024-04-27", "2024-04-29"),  # a Saturday: Sunday is closed too
    ],
)
def test_an_overseas_public_holiday_closes_that_region_only(wide_policy, phone, zone, holiday, next_day):
    grant_marketing(wide_policy, phone)
    assert marketing(wide_policy, phone, local(zone, holiday, 11)) == defer(
        GateReason.QUIET_HOURS, local(zone, next_day, 8)
    )
    assert marketing(wide_policy, FR_MOBILE, local(PARIS, holiday, 11)) == SEND  # not one in Paris
    # Metropolitan France's holidays close it too (14 July, a Monday).
    assert marketing(wide_policy, phone, local(zone, "2025-07-14", 11)).reason == GateReason.QUIET_HOURS


def test_numbers_sharing_plus_590_keep_their_own_holidays_in_one_batch(wide_policy):
    """Saint-Barthélemy's 9 October closes Saint-Barthélemy, not Guadeloupe: the place of a number
    under a shared country code is not taken from another number of the same code."""
    for phone in (GUADELOUPE_MOBILE, SAINT_BARTH):
        grant_marketing(wide_policy, phone)
    now = local(GUADELOUPE, "2025-10-09", 11)  # a Thursday
    closed = defer(GateReason.QUIET_HOURS, local(GUADELOUPE, "2025-10-10", 8))
    for order in ([GUADELOUPE_MOBILE, SAINT_BARTH], [SAINT_BARTH, GUADELOUPE_MOBILE]):
        numbers._ZONE_CACHE.clear()
        verdicts = gate_check_many(tenant=wide_policy, recipients=order, purpose="marketing", now=now)
        assert verdicts == {GUADELOUPE_MOBILE: SEND, SAINT_BARTH: closed}


def test_the_law_reaches_every_french_overseas_region_as_data():
    for region, calendar in regions.FRENCH_LAW_REGIONS.items():
        assert regions.STATUTORY_WINDOWS[region] == ("08:00", "22:00")
        assert regions.STATUTORY_CLOSED_DAYS[region] == ClosedDays(frozenset({6}), (calendar,))
    assert {"RE", "GP", "MQ", "GF", "YT", "BL", "MF", "PM"} <= set(regions.FRENCH_LAW_REGIONS)


# --- statutory windows are never loosened by a tenant setting ---------------------------------------
# The sending policy form refuses both settings below; a policy saved before it did still works,
# and the gate says so in the log (the page flags it too: test_views_sending_policy.py).


@pytest.fixture(autouse=True)
def _fresh_warning_limits():
    """The gate logs a set-aside setting at most hourly per tenant and region (in the cache,
    which outlives a test on Redis): each test starts with none logged yet."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_a_set_aside_setting_is_logged_at_most_hourly_not_per_message(tenant, caplog):
    grant_marketing(tenant, FL)
    policy_set(tenant, quiet_start="20:30", quiet_end="23:00")
    now = local(NEW_YORK, "2025-06-10", 20, 45)
    with caplog.at_level(logging.WARNING, logger="messaging.gate"):
        for _ in range(3):  # the worker gates each message in a run of its own
            gate_check_many(tenant=tenant, recipients=[FL], purpose="marketing", now=now)
    assert [r.msg for r in caplog.records] == ["gate.policy_window_disjoint"]


def test_a_region_window_disjoint_from_florida_law_is_ignored_not_the_law(tenant, caplog):
    grant_marketing(tenant, FL)
    policy_set(tenant, region_windows={"US-FL": ["20:30", "21:00"]})
    with caplog.at_level(logging.WARNING, logger="messaging.gate"):
        assert marketing(tenant, FL, local(NEW_YORK, "2025-06-10", 20, 30)) == defer(
            GateReason.QUIET_HOURS, local(NEW_YORK, "2025-06-11", 8)
        )
    [record] = [r for r in caplog.records if r.msg == "gate.region_window_ignored"]
    assert (record.tenant, record.region, record.lines) == (tenant.slug, "US-FL", ("US-FL",))


def test_a_tenant_window_disjoint_from_florida_law_gives_way_to_the_law_and_is_logged_once(tenant, caplog):
    for phone in (FL, "+13055550145", OK, SF):
        grant_marketing(tenant, phone)
    policy_set(tenant, quiet_start="20:30", quiet_end="23:00")
    now = local(NEW_YORK, "2025-06-10", 20, 45)
    with caplog.at_level(logging.WARNING, logger="messaging.gate"):
        verdicts = gate_check_many(tenant=tenant, recipients=[FL, "+13055550145", OK, SF], purpose="marketing", now=now)
    morning = defer(GateReason.QUIET_HOURS, local(NEW_YORK, "2025-06-11", 8))
    assert verdicts[FL] == verdicts["+13055550145"] == morning
    assert verdicts[SF] == defer(GateReason.QUIET_HOURS, local(LOS_ANGELES, "2025-06-10", 20, 30))  # its own window
    # Once per run and region, with what the tenant asked for and what applies instead.
    logged = [(r.tenant, r.region, r.policy_window, r.law_window) for r in caplog.records]
    assert sorted(logged) == [
        (tenant.slug, "US-FL", "20:30-23:00", "08:00-20:00"),
        (tenant.slug, "US-OK", "20:30-23:00", "08:00-20:00"),
    ]
    assert {r.msg for r in caplog.records} == {"gate.policy_window_disjoint"}


def test_a_country_line_stays_where_a_subdivision_line_would_close_the_window(tenant):
    """Only the line that would close the window is set aside, not every line of the region."""
    grant_marketing(tenant, SF)
    policy_set(tenant, region_windows={"US": ["09:00", "12:00"], "US-CA": ["13:00", "15:00"]})
    assert marketing(tenant, SF, local(LOS_ANGELES, "2025-06-10", 13, 30)) == defer(
        GateReason.QUIET_HOURS, local(LOS_ANGELES, "2025-06-11", 9)
    )
    rules = gate.region_rules(policy=sending_policy_get(tenant=tenant), region="US-CA")
    assert rules.lines_ignored == ("US-CA",) and not rules.policy_window_disjoint


# --- batches answer as single checks do ----------------------------------------------------------------


def filler(count: int) -> list[str]:
    found, line = [], 0
    while len(found) < count:
        candidate = f"+1212{2000000 + line}"
        line += 1
        if number_parse(candidate):
            found.append(candidate)
    return found


SPECIAL = [FL, OK, SF, NY, FR_MOBILE, FR_PARIS]


@pytest.mark.parametrize(
    "now",
    [
        local(NEW_YORK, "2025-06-10", 12),  # a Tuesday: capped Florida/Oklahoma only
        local(NEW_YORK, "2025-06-10", 20, 30),  # Florida closed, New York open, Paris night
        local(PARIS, "2025-06-15", 11),  # a French Sunday
        local(PARIS, "2025-06-14", 22, 30),  # a French Saturday night
        local(PARIS, "2025-07-14", 15),  # Bastille Day
    ],
)
@pytest.mark.parametrize("frequency_cap", [0, 10])
def test_batch_gives_the_answers_single_checks_give(tenant, now, frequency_cap):
    policy_set(tenant, quiet_start="07:00", quiet_end="23:00", frequency_cap=frequency_cap)
    many = filler(2100)  # above the IN-list limit: whole-tenant reads
    for phone in SPECIAL + many[:20]:
        grant_marketing(tenant, phone)
    for phone in SPECIAL:
        for hours_ago in (20, 6, 2):
            sent_marketing(tenant, phone, accepted_at=now - timedelta(hours=hours_ago))

    batch = gate_check_many(tenant=tenant, recipients=many[:1000] + SPECIAL + many[1000:], purpose="marketing", now=now)
    singles = {phone: gate_check(tenant=tenant, to=phone, purpose="marketing", now=now) for phone in SPECIAL}
    assert {phone: batch[phone] for phone in SPECIAL} == singles
    # Florida and Oklahoma are always at their cap of 3 here; California and New York never.
    assert {singles[FL].decision, singles[OK].decision} == {GateDecision.DEFER}
    assert singles[SF].reason != GateReason.FREQUENCY_CAP and singles[NY].reason != GateReason.FREQUENCY_CAP


def test_statutory_caps_keep_the_query_count_constant(tenant):
    policy_set(tenant, frequency_cap=0)
    now = local(NEW_YORK, "2025-06-10", 12)
    many = filler(2100)
    for phone in many[:10] + [FL]:
        grant_marketing(tenant, phone)

    def queries(recipients) -> int:
        with CaptureQueriesContext(connection) as captured:
            gate_check_many(tenant=tenant, recipients=recipients, purpose="marketing", now=now)
        return len(captured)

    without_capped_numbers = queries(many[:1])
    assert queries([FL]) == without_capped_numbers + 1  # the 24 h count, only when someone is capped
    assert queries([FL, *many[:500]]) == queries([FL, *many]) == without_capped_numbers + 1
