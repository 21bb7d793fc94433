"""The compliance gate: may this message go to this number now, later, or never?

Every outbound message passes the gate twice: when it is queued (`messaging.delivery.queueing`) and again
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

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from tenants.models import Tenant

from .. import statuses
from ..ledgers.reachability import IN_LIST_LIMIT, latest_actions, ledger_for_phones, numbers_opted_out
from ..models import (
    ConsentEvent,
    GateDecision,
    GateReason,
    Message,
    Purpose,
    RevocationReview,
    SendingPolicy,
)
from .calendars import holiday_calendar
from .numbers import number_parse, number_place
from .policy import sending_policy_get
from .regions import (
    FREQUENCY_WINDOW,
    STATUTORY_CAPS,
    STATUTORY_CLOSED_DAYS,
    STATUTORY_WINDOWS,
    ClosedDays,
    RegionRules,
)

logger = logging.getLogger("messaging.gate")  # a stable name: log routing and tests select it

__all__ = [
    "REVOCATION_RECHECK",
    "GateVerdict",
    "gate_check",
    "gate_check_many",
    "gate_evaluate",
    "region_cap",
    "region_rules",
    "region_window",
    "restricted_purposes",
]


#: How long a message to a number under revocation review waits before the gate looks again.
REVOCATION_RECHECK = timedelta(hours=1)
#: The gate logs a setting it sets aside (saved before the form refused it) at most this often
#: per tenant and region.
WARN_EVERY_SECONDS = 3600
#: Candidate zones further apart than this say nothing useful about where a number's owner is
#: (a toll-free or non-geographic NANP number lists every zone from Guam to Adak): the tenant's
#: own time zone decides instead. Idaho's Mountain/Pacific or Spain's Madrid/Canary stay.
MAX_ZONE_SPREAD = timedelta(hours=3)


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
    parsed = [number_parse(raw) for raw in recipients]
    phones = {p.e164 for p in parsed if p is not None}
    if not phones:
        return [(None, _INVALID)] * len(recipients)
    if tenant.status != Tenant.Status.ACTIVE:
        return [(p.e164, _SUSPENDED) if p else (None, _INVALID) for p in parsed]

    policy = sending_policy_get(tenant=tenant)
    restricted = purpose in restricted_purposes(policy)
    opted_out = numbers_opted_out(tenant=tenant, phones=phones)
    consented = _marketing_consented(tenant, phones) if purpose == Purpose.MARKETING else set()
    if restricted:
        reviewing = _revocations_open(tenant, phones)
        rules = _Rules(policy, tenant, now)
        # Without a policy cap only numbers under a statutory one are counted (often none: no query).
        capped = (
            phones if rules.policy_cap else {n.e164 for n in parsed if n and rules.region(*number_place(n)[1:]).cap}
        )
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
            zones, country, subdivision = number_place(number)
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
    return day.weekday() in closed.weekdays or any(day in holiday_calendar(c) for c in closed.calendars)


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


# --- Ledgers ------------------------------------------------------------------------------------


def _marketing_consented(tenant: Tenant, phones: set[str]) -> set[str]:
    rows = (
        ledger_for_phones(ConsentEvent.objects.for_tenant(tenant).filter(purpose=Purpose.MARKETING), phones)
        .order_by("phone", "captured_at", "id")
        .values_list("phone", "action")
    )
    return {p for p, a in latest_actions(rows).items() if a == ConsentEvent.Action.GRANTED and p in phones}


def _revocations_open(tenant: Tenant, phones: set[str]) -> set[str]:
    open_reviews = RevocationReview.objects.for_tenant(tenant).filter(status=RevocationReview.Status.OPEN)
    return set(ledger_for_phones(open_reviews, phones).values_list("phone", flat=True)) & phones


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
