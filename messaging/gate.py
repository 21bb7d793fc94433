"""The compliance gate: may this message go to this number now, later, or never?

Every outbound message passes the gate twice: when it is queued (`messaging.sending`) and again
at send time in the worker, because an opt-out or a revocation can arrive while it waits.

Checks, in this order; the first that applies names the reason:

1. ``invalid_number``  (block)  not a valid E.164 number according to phonenumbers.
2. ``tenant_suspended`` (block) the tenant is not active.
3. ``opted_out``       (block)  the number's latest opt-out event is an opt-out. EVERY purpose,
   OTP included: an opted-out person gets nothing.
4. ``no_consent``      (block)  marketing only: the number's latest marketing `ConsentEvent` is
   not ``granted``.
5. ``revocation_pending`` (defer) an open `RevocationReview` for the number: an admin must decide
   whether "please stop texting me" was a revocation. Deferred, re-checked every
   `REVOCATION_RECHECK` (not until the review deadline: a dismissal should not hold messages
   for ten business days, and a confirmation turns the next check into ``opted_out``).
6. ``quiet_hours``     (defer)  outside the allowed window in the recipient's local time, or on a
   day the recipient's region closes (France: Sundays and public holidays).
7. ``frequency_cap``   (defer)  the number already had as many capped messages in 24 h as its cap:
   the policy's `frequency_cap`, lowered by `STATUTORY_CAPS` where the law says less.

5-7 apply to the *restricted* purposes only: marketing, and informational when the tenant's
policy says `informational_follows_marketing_rules`. OTP and transactional messages skip them:
an OTP at 23:00 goes at once. When several deferrals apply, the reason is the first one and
`send_after` the earliest moment all of them are over (a cap that ends at 22:00 waits for the
next morning's window).

Quiet hours. The recipient's local time comes from the number (`phonenumbers.timezone`). A
number with several candidate zones (Idaho's 208 is Mountain or Pacific) must be inside the
window in ALL of them, and `send_after` is the first moment it is. When the zones are more
than `MAX_ZONE_SPREAD` apart (non-geographic numbers list every zone of the country, Guam to
Adak) or can never be inside together, or the zone is unknown, the tenant's own time zone
decides. The window is the policy's
`quiet_start`-`quiet_end` (default 08:00-21:00, end exclusive), narrowed by
`STATUTORY_WINDOWS` (Florida and Oklahoma: 08:00-20:00; France, overseas departments and
collectivities included: 08:00-22:00; always applied: the law is not a preference) and by the
policy's `region_windows` (keys: a country, ``"FR"``, or a subdivision, ``"US-FL"``). Region
windows only ever narrow the window. The sending policy form refuses a policy window that misses
a statutory one altogether and a region line that would close the window somewhere; a policy
saved before it did still works: such a line is ignored there, and such a policy window gives
way to the law's (wider than the tenant asked, but a message never waits forever for a window
that never opens). Both are logged at most hourly per tenant and region (``gate.policy_window_disjoint``,
``gate.region_window_ignored``) and flagged on the sending policy page (`RegionRules`). So a
French number under the default policy gets 08:00-21:00 (the tenant's own end is earlier than
the law's), and 08:00-22:00 only when the tenant's window reaches 22:00.
`STATUTORY_CLOSED_DAYS` closes whole local days by region, as data: weekdays plus a `holidays`
calendar (France: Sundays and French public holidays, so Saturday 22:30 waits for Monday 08:00,
or Tuesday after Whit Monday; Réunion, Guadeloupe and the other overseas regions
(`FRENCH_LAW_REGIONS`) their own calendar, in their own time zone). A closed day is judged in
each of the number's zones, like the window. US and Canadian subdivisions come from the area
code (phonenumbers' geocoder names the state: "Florida", "Miami, FL"); the region of a number
is phonenumbers' (a Réunion number is "RE", not "FR"), and `REGION_ZONES` picks the zone where
its country code spans several (+262: Réunion or Mayotte).

Frequency cap. Counted per number: the tenant's restricted-purpose outbound messages accepted by
Twilio in the last 24 h, plus those already queued to go (pending with decision ``send``), plus
earlier rows of the same batch. The deferral lasts until enough of them are 24 h old. The cap is
the policy's `frequency_cap` (0: none) or, where `STATUTORY_CAPS` names the number's region, the
smaller of the two: Florida's and Oklahoma's telephone solicitation acts allow at most 3
messages per 24 h "on the same matter", which the gate reads as "from the same tenant", the
conservative reading (a tenant's campaigns are not told apart), and applies whatever the
tenant's own cap, even with none.

Batched: `gate_check_many` makes a constant number of queries whatever the number of
recipients (policy, opt-outs, and for restricted purposes consent, open reviews and the 24 h
counts). Small batches filter by the numbers (`IN`); large ones read the tenant's whole current
state and intersect in memory, which keeps the query count constant without huge `IN` lists.
Parsing is the hot spot: each number is parsed once, and time zones, subdivisions and window
answers are cached by number prefix; each region's rules (window, closed days, cap) once per run,
and closed days per (rule, date).
"""

from __future__ import annotations

import calendar
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

from tenants.models import Tenant

from . import statuses
from .models import (
    ConsentEvent,
    GateDecision,
    GateReason,
    Message,
    OptOutEvent,
    Purpose,
    RevocationReview,
    SendingPolicy,
)
from .selectors import numbers_suppressed

logger = logging.getLogger(__name__)

__all__ = [
    "FRENCH_LAW_REGIONS",
    "FREQUENCY_WINDOW",
    "REGION_ZONES",
    "REVOCATION_RECHECK",
    "STATUTORY_CAPS",
    "STATUTORY_CLOSED_DAYS",
    "STATUTORY_WINDOWS",
    "ClosedDays",
    "GateVerdict",
    "RegionRules",
    "StatutoryRule",
    "gate_check",
    "gate_check_many",
    "gate_evaluate",
    "phone_e164",
    "region_cap",
    "region_name",
    "region_rules",
    "region_window",
    "restricted_purposes",
    "sending_policy_get",
    "statutory_rules",
]

#: How long a message to a number under revocation review waits before the gate looks again.
REVOCATION_RECHECK = timedelta(hours=1)
#: The gate logs a setting it sets aside (saved before the form refused it) at most this often
#: per tenant and region.
WARN_EVERY_SECONDS = 3600
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
            _holiday_calendar(code)  # an unknown calendar fails here, not in a bulk send

    def __or__(self, other: ClosedDays) -> ClosedDays:
        return ClosedDays(self.weekdays | other.weekdays, tuple(dict.fromkeys(self.calendars + other.calendars)))


@lru_cache(maxsize=64)
def _holiday_calendar(code: str) -> holidays.HolidayBase:
    country, _, subdivision = code.partition("-")
    return holidays.country_holidays(country, subdiv=subdivision or None)


#: Whole local days the law closes, by region (DOMAIN.md: France, no Sundays and no public
#: holidays, overseas included). Keys as in `STATUTORY_WINDOWS`.
STATUTORY_CLOSED_DAYS: dict[str, ClosedDays] = {
    region: ClosedDays(weekdays=frozenset({6}), calendars=(holidays_calendar,))
    for region, holidays_calendar in FRENCH_LAW_REGIONS.items()
}
#: Candidate zones further apart than this say nothing useful about where a number's owner is
#: (a toll-free or non-geographic NANP number lists every zone from Guam to Adak): the tenant's
#: own time zone decides instead. Idaho's Mountain/Pacific or Spain's Madrid/Canary stay.
MAX_ZONE_SPREAD = timedelta(hours=3)
#: Up to this many distinct numbers the ledgers are read with `phone IN (...)`; above it, the
#: tenant's whole current state is read once and intersected in memory.
IN_LIST_LIMIT = 2000


@dataclass(frozen=True)
class GateVerdict:
    """The gate's answer for one number: `decision` is send, defer or block; `reason` a
    `GateReason` value ('' when sending); `send_after` is set for deferrals only."""

    decision: str
    reason: str = ""
    send_after: datetime | None = None

    @property
    def sends(self) -> bool:
        return self.decision == GateDecision.SEND


_SEND = GateVerdict(GateDecision.SEND)
_INVALID = GateVerdict(GateDecision.BLOCK, GateReason.INVALID_NUMBER)
_SUSPENDED = GateVerdict(GateDecision.BLOCK, GateReason.TENANT_SUSPENDED)
_OPTED_OUT = GateVerdict(GateDecision.BLOCK, GateReason.OPTED_OUT)
_NO_CONSENT = GateVerdict(GateDecision.BLOCK, GateReason.NO_CONSENT)


# --- Public API ---------------------------------------------------------------------------------


def gate_check(*, tenant: Tenant, to: str, purpose: str, now: datetime | None = None) -> GateVerdict:
    """The gate's verdict for one message (see the module docstring for the rules)."""
    return gate_check_many(tenant=tenant, recipients=[to], purpose=purpose, now=now)[to]


def gate_check_many(
    *, tenant: Tenant, recipients: Sequence[str], purpose: str, now: datetime | None = None
) -> dict[str, GateVerdict]:
    """Verdicts for many numbers at once, keyed by the recipient string as given.

    A constant number of queries whatever `len(recipients)`. Each distinct number is judged as
    if it were the only message (a number listed twice is not counted twice against the cap;
    `gate_evaluate` does that, for queuing rows).
    """
    unique = list(dict.fromkeys(recipients))
    results = gate_evaluate(tenant=tenant, recipients=unique, purpose=purpose, now=now)
    return {raw: verdict for raw, (_, verdict) in zip(unique, results, strict=True)}


def gate_evaluate(
    *,
    tenant: Tenant,
    recipients: Sequence[str],
    purpose: str,
    now: datetime | None = None,
    ahead_of: int | None = None,
) -> list[tuple[str | None, GateVerdict]]:
    """One (E.164 number or None when invalid, verdict) per recipient, in order.

    Unlike `gate_check_many`, rows are judged in sequence: a number's earlier rows that were
    allowed count against the frequency cap of its later ones. Queued messages (pending,
    decision send) count against the cap; with `ahead_of` only those queued before that
    message id do, so the worker re-checking a message neither counts itself nor defers it
    because of messages queued after it (two queued messages never defer each other).
    """
    if purpose not in Purpose.values:
        raise ValueError(f"Unknown purpose {purpose!r}; expected one of {', '.join(Purpose.values)}")
    now = now or timezone.now()
    parsed = [_parse(raw) for raw in recipients]
    phones = {p.e164 for p in parsed if p is not None}
    if not phones:
        return [(None, _INVALID)] * len(recipients)
    if tenant.status != Tenant.Status.ACTIVE:
        return [(p.e164, _SUSPENDED) if p else (None, _INVALID) for p in parsed]

    policy = sending_policy_get(tenant=tenant)
    restricted = purpose in restricted_purposes(policy)
    opted_out = _opted_out(tenant, phones)
    consented = _marketing_consented(tenant, phones) if purpose == Purpose.MARKETING else set()
    if restricted:
        reviewing = _revocations_open(tenant, phones)
        rules = _Rules(policy, tenant, now)
        # Without a policy cap only numbers under a statutory one are counted (often none: no query).
        capped = phones if rules.policy_cap else {n.e164 for n in parsed if n and rules.region(*_place(n)[1:]).cap}
        counted = _recent_counted(tenant, capped, restricted_purposes(policy), now, ahead_of) if capped else {}

    results: list[tuple[str | None, GateVerdict]] = []
    batch_sends: Counter[str] = Counter()
    for number in parsed:
        if number is None:
            results.append((None, _INVALID))
            continue
        phone = number.e164
        if phone in opted_out:
            verdict = _OPTED_OUT
        elif purpose == Purpose.MARKETING and phone not in consented:
            verdict = _NO_CONSENT
        elif not restricted:
            verdict = _SEND
        else:
            zones, country, subdivision = _place(number)
            region = rules.region(country, subdivision)
            cap_until = None
            if cap := region.cap:
                sent = counted.get(phone, [])
                n = len(sent) + batch_sends[phone]
                if n >= cap:
                    stamps = sorted(sent + [now] * batch_sends[phone])
                    cap_until = stamps[n - cap] + FREQUENCY_WINDOW
            verdict = rules.verdict(zones, region, revocation=phone in reviewing, cap_until=cap_until)
        if verdict.sends and restricted:
            batch_sends[phone] += 1
        results.append((phone, verdict))
    return results


def restricted_purposes(policy: SendingPolicy) -> frozenset[str]:
    """Purposes that quiet hours, frequency caps and pending revocations apply to."""
    if policy.informational_follows_marketing_rules:
        return frozenset({Purpose.MARKETING, Purpose.INFORMATIONAL})
    return frozenset({Purpose.MARKETING})


def sending_policy_get(*, tenant: Tenant) -> SendingPolicy:
    """The tenant's sending policy, created with the defaults the first time it is needed."""
    policy, _ = SendingPolicy.objects.get_or_create(tenant=tenant)
    return policy


def phone_e164(raw: str) -> str | None:
    """`raw` as E.164 when it is a valid international number, else None."""
    number = _parse(raw)
    return number.e164 if number else None


# --- Numbers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Number:
    e164: str
    parsed: phonenumbers.PhoneNumber
    region: str  # phonenumbers' region ("US", "RE"; "001" for non-geographic entities)


_NANP_E164 = re.compile(r"\+1[2-9]\d{9}")


def _parse(raw: str) -> _Number | None:
    """Parse once: a number must be international (+country code) and valid."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text.startswith("+"):
        return None  # no national formats guessed: E.164 is the contract
    if _NANP_E164.fullmatch(text):
        # Already E.164 in the +1 plan (most of the traffic): building the number directly is
        # exactly what parse() would produce, and a number valid for the US is valid (that is
        # what is_valid_number finds first, at twice the cost).
        number = phonenumbers.PhoneNumber(country_code=1, national_number=int(text[2:]))
        if phonenumbers.is_valid_number_for_region(number, "US"):
            return _Number(text, number, "US")
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
    return _Number(f"+{number.country_code}{phonenumbers.national_significant_number(number)}", number, region)


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


def _place(number: _Number) -> tuple[tuple[str, ...], str, str]:
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


_US_STATES = {
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
_CA_PROVINCES = {
    "Alberta": "AB", "British Columbia": "BC", "Manitoba": "MB", "New Brunswick": "NB",
    "Newfoundland and Labrador": "NL", "Nova Scotia": "NS", "Ontario": "ON",
    "Prince Edward Island": "PE", "Quebec": "QC", "Saskatchewan": "SK",
    "Northwest Territories": "NT", "Nunavut": "NU", "Yukon": "YT",
}  # fmt: skip
_STATE_SUFFIX = re.compile(r",\s*([A-Z]{2})$")


def _subdivision(number: _Number, country: str) -> str:
    """ISO 3166-2 subdivision ("US-FL") of a US or Canadian number, from its area code; ''
    elsewhere or when the area code isn't tied to one state (toll-free, non-geographic)."""
    if country not in ("US", "CA"):
        return ""
    key = number.e164[:5]  # +1 and the area code: area codes never cross state lines
    found = _SUBDIVISION_CACHE.get(key)
    if found is None:
        text = geocoder.description_for_number(number.parsed, "en").strip()
        codes = _US_STATES if country == "US" else _CA_PROVINCES
        code = ""
        if match := _STATE_SUFFIX.search(text):
            code = match.group(1)
        elif text in codes:
            code = codes[text]
        found = _SUBDIVISION_CACHE[key] = f"{country}-{code}" if code else ""
    return found


# --- Quiet hours, closed days and caps by region ----------------------------------------------


def _as_time(value) -> time:
    return value if isinstance(value, time) else time.fromisoformat(str(value))


_WHOLE_DAY = (time.min, time.max)


def _window_text(window: tuple[time, time] | None) -> str:
    return f"{window[0]:%H:%M}-{window[1]:%H:%M}" if window else ""


def _narrowed(window: tuple[time, time], bounds) -> tuple[time, time]:
    """`window` cut down to `bounds` (a [start, end] pair); unchanged when `bounds` is missing or
    malformed: a bad region entry never loosens the window."""
    try:
        low, high = (_as_time(b) for b in bounds) if bounds else (None, None)
    except (TypeError, ValueError):
        return window
    if low is None or high is None or low >= high:
        return window
    return max(window[0], low), min(window[1], high)


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


class _Rules:
    """Quiet-hours, closed-day and cap answers for one gate run (one tenant, one `now`), cached
    per region and per moment. With `warn`, a region whose rules set some of the tenant's
    settings aside is logged (`gate.policy_window_disjoint`, `gate.region_window_ignored`), at
    most once per `WARN_EVERY_SECONDS` for a tenant and region."""

    def __init__(self, policy: SendingPolicy, tenant: Tenant, now: datetime, *, warn: bool = True) -> None:
        self.now = now
        self.tenant_slug = tenant.slug
        self.warn = warn
        self.policy_cap = policy.frequency_cap or 0
        self.default = (_as_time(policy.quiet_start), _as_time(policy.quiet_end))
        self.region_windows = {
            str(k).upper(): v for k, v in (policy.region_windows or {}).items() if isinstance(v, list | tuple)
        }
        try:
            self.tenant_zone = tenant.timezone and ZoneInfo(tenant.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.tenant_zone = None
        self.tenant_zone = self.tenant_zone or ZoneInfo("UTC")
        self._region_cache: dict[tuple[str, str], RegionRules] = {}
        self._allowed_cache: dict[tuple, datetime] = {}

    def verdict(
        self, zones: tuple[str, ...], region: RegionRules, *, revocation: bool, cap_until: datetime | None
    ) -> GateVerdict:
        now = self.now
        in_window_now = self._next_allowed(zones, region, now) == now
        if not (revocation or cap_until or not in_window_now):
            return _SEND
        reason = (
            GateReason.REVOCATION_PENDING
            if revocation
            else GateReason.QUIET_HOURS
            if not in_window_now
            else GateReason.FREQUENCY_CAP
        )
        at = now
        if revocation:
            at = now + REVOCATION_RECHECK
        if cap_until and cap_until > at:
            at = cap_until
        return GateVerdict(GateDecision.DEFER, reason, self._next_allowed(zones, region, at))

    def region(self, country: str, subdivision: str) -> RegionRules:
        key = (country, subdivision)
        found = self._region_cache.get(key)
        if found is None:
            found = self._region_cache[key] = self._region_rules(country, subdivision)
            if self.warn and (found.policy_window_disjoint or found.lines_ignored):
                self._warn(subdivision or country, found)
        return found

    def _warn(self, region: str, found: RegionRules) -> None:
        """Log what the gate set aside, at most once an hour per tenant and region: the worker
        gates each message on its own, so "once per run" would mean once per message."""
        try:
            first = cache.add(f"gate:set-aside:{self.tenant_slug}:{region}", 1, WARN_EVERY_SECONDS)
        except Exception:  # noqa: BLE001 - a cache outage must never stop a send; log anyway
            first = True
        if not first:
            return
        if found.policy_window_disjoint:
            logger.warning(
                "gate.policy_window_disjoint",
                extra={
                    "tenant": self.tenant_slug,
                    "region": region,
                    "policy_window": _window_text(self.default),
                    "law_window": _window_text(found.law),
                },
            )
        if found.lines_ignored:
            logger.warning(
                "gate.region_window_ignored",
                extra={"tenant": self.tenant_slug, "region": region, "lines": found.lines_ignored},
            )

    def _region_rules(self, country: str, subdivision: str) -> RegionRules:
        names = [r for r in (country, subdivision) if r]
        law = None
        for name in names:
            if bounds := STATUTORY_WINDOWS.get(name):
                law = _narrowed(law or _WHOLE_DAY, bounds)
        if law and law[0] >= law[1]:  # contradictory statutes (none in the data): no usable law window
            law = None
        window, disjoint = self.default, False
        if law:
            window = _narrowed(self.default, law)
            if window[0] >= window[1] and self.default[0] < self.default[1]:
                # Only a policy saved before the form refused this reaches here. The law's window
                # is wider than the tenant asked, but a message that waits forever for a window
                # that never opens is lost silently; the page and the log say so instead.
                window, disjoint = law, True
        ignored = []
        for name in names:
            if name not in self.region_windows:
                continue  # no line of the tenant's here: nothing to set aside
            narrowed = _narrowed(window, self.region_windows.get(name))
            if narrowed[0] >= narrowed[1]:  # a line that would close the window altogether
                ignored.append(name)
            else:
                window = narrowed
        closed = None
        for rule in filter(None, (STATUTORY_CLOSED_DAYS.get(name) for name in names)):
            closed = rule if closed is None else closed | rule
        caps = [c for c in (self.policy_cap, *(STATUTORY_CAPS.get(name, 0) for name in names)) if c]
        return RegionRules(window, closed, min(caps, default=0), law, disjoint, tuple(ignored))

    def _next_allowed(self, zones: tuple[str, ...], region: RegionRules, at: datetime) -> datetime:
        """The first moment at or after `at` when every zone is inside the region's window on a
        day it doesn't close."""
        key = (zones, region.window, region.closed, at)
        found = self._allowed_cache.get(key)
        if found is None:
            infos = [ZoneInfo(z) for z in zones]
            offsets = [at.astimezone(z).utcoffset() for z in infos]
            if not infos or max(offsets) - min(offsets) > MAX_ZONE_SPREAD:
                infos = [self.tenant_zone]  # the number doesn't say where its owner is
            found = _first_inside(infos, region.window, region.closed, at)
            if found is None:  # the zones never share a window (non-geographic numbers)
                found = _first_inside([self.tenant_zone], region.window, region.closed, at)
            self._allowed_cache[key] = found
        return found


@lru_cache(maxsize=8192)
def _is_closed(closed: ClosedDays, day: date) -> bool:
    return day.weekday() in closed.weekdays or any(day in _holiday_calendar(c) for c in closed.calendars)


def _inside(moment: datetime, zone: ZoneInfo, window: tuple[time, time], closed: ClosedDays | None) -> bool:
    local = moment.astimezone(zone)
    return window[0] <= local.time() < window[1] and not (closed and _is_closed(closed, local.date()))


def _first_inside(
    zones: list[ZoneInfo], window: tuple[time, time], closed: ClosedDays | None, at: datetime
) -> datetime | None:
    """`at` if every zone is inside the window (on an open day) then; else the earliest window
    opening in any zone at which all are (the last constraint to lift is always some zone's
    opening); None when they never are together. Openings are looked for over the next three
    days, or two weeks when days can be closed (a Sunday then a holiday Monday, and more)."""
    if all(_inside(at, z, window, closed) for z in zones):
        return at
    horizon = 4 if closed is None else 15
    openings: set[datetime] = set()
    for zone in zones:
        local_day = at.astimezone(zone).date()
        for offset in range(-1, horizon):
            day = local_day + timedelta(days=offset)
            openings.add(_local_moment(day, window[0], zone))
    for candidate in sorted(c for c in openings if c > at):
        if all(_inside(candidate, z, window, closed) for z in zones):
            return candidate
    return None


def _local_moment(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`day` at wall time `at` in `zone`, as UTC (a wall time in a DST gap moves forward)."""
    local = datetime.combine(day, at, tzinfo=zone)
    moment = local.astimezone(ZoneInfo("UTC"))
    if moment.astimezone(zone).time() < at:  # in a spring-forward gap
        moment += timedelta(hours=1)
    return moment


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
    names = {"US": _US_STATES, "CA": _CA_PROVINCES}.get(country, {})
    return next((name for name, short in names.items() if short == subdivision), None)


def region_rules(*, policy: SendingPolicy, region: str) -> RegionRules:
    """The `RegionRules` a gate run applies to numbers of `region` ("FR", "US-FL") under
    `policy`, settings set aside included (nothing is logged: pages and forms ask this)."""
    country, dash, _ = region.partition("-")
    rules = _Rules(policy, Tenant(timezone="UTC"), timezone.now(), warn=False)
    return rules.region(country, region if dash else "")


def region_window(*, policy: SendingPolicy, region: str) -> tuple[time, time]:
    """The local window the gate applies to numbers of `region` ("FR", "US-FL") under `policy`:
    its own window narrowed by the law's and by its region windows, exactly as in a gate run."""
    return region_rules(policy=policy, region=region).window


def region_cap(*, policy: SendingPolicy, region: str) -> int:
    """The frequency cap the gate applies to numbers of `region` under `policy` (0: none): the
    policy's, lowered by the law's, exactly as in a gate run."""
    return region_rules(policy=policy, region=region).cap


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


# --- Ledgers ------------------------------------------------------------------------------------


def _by_phone(queryset, phones: set[str]):
    """Filter by the numbers for small batches; read the tenant's whole table for large ones."""
    return queryset.filter(phone__in=phones) if len(phones) <= IN_LIST_LIMIT else queryset


def _latest_actions(rows) -> dict[str, str]:
    """phone -> action of its latest event, from rows ordered oldest first."""
    latest: dict[str, str] = {}
    for phone, action in rows:
        latest[phone] = action
    return latest


def _opted_out(tenant: Tenant, phones: set[str]) -> set[str]:
    rows = (
        _by_phone(OptOutEvent.objects.for_tenant(tenant), phones)
        .order_by("phone", "created_at", "id")
        .values_list("phone", "action")
    )
    opted_out = {p for p, a in _latest_actions(rows).items() if a == OptOutEvent.Action.OPT_OUT and p in phones}
    # A GDPR-erased number's ledger rows no longer carry it: only its keyed hash blocks it now.
    return opted_out | numbers_suppressed(tenant=tenant, phones=phones)


def _marketing_consented(tenant: Tenant, phones: set[str]) -> set[str]:
    rows = (
        _by_phone(ConsentEvent.objects.for_tenant(tenant).filter(purpose=Purpose.MARKETING), phones)
        .order_by("phone", "captured_at", "id")
        .values_list("phone", "action")
    )
    return {p for p, a in _latest_actions(rows).items() if a == ConsentEvent.Action.GRANTED and p in phones}


def _revocations_open(tenant: Tenant, phones: set[str]) -> set[str]:
    open_reviews = RevocationReview.objects.for_tenant(tenant).filter(status=RevocationReview.Status.OPEN)
    return set(_by_phone(open_reviews, phones).values_list("phone", flat=True)) & phones


def _recent_counted(
    tenant: Tenant, phones: set[str], purposes: frozenset[str], now: datetime, ahead_of: int | None
) -> dict[str, list[datetime]]:
    """phone -> when each message counting against its cap went (queued ones: now)."""
    queued = Q(status=statuses.PENDING, gate_decision=GateDecision.SEND, sid__isnull=True)
    if ahead_of is not None:
        queued &= Q(pk__lt=ahead_of)
    qs = Message.objects.for_tenant(tenant).filter(
        Q(accepted_at__gt=now - FREQUENCY_WINDOW) | queued,
        direction=Message.Direction.OUTBOUND,
        purpose__in=purposes,
    )
    if len(phones) <= IN_LIST_LIMIT:
        qs = qs.filter(to_number__in=phones)
    found: dict[str, list[datetime]] = defaultdict(list)
    for phone, accepted_at in qs.values_list("to_number", "accepted_at"):
        if phone in phones:
            found[phone].append(accepted_at or now)
    return found
