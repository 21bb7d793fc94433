"""The compliance gate: every reason, their order, local-time quiet hours and frequency caps,
and a constant number of queries however many recipients are checked at once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from phonenumbers import timezone as phone_timezone

from messaging.compliance.gate import REVOCATION_RECHECK, GateVerdict, gate_check, gate_check_many, gate_evaluate
from messaging.compliance.numbers import number_parse
from messaging.compliance.policy import sending_policy_get
from messaging.ledgers.services import opt_in_record, opt_out_record
from messaging.models import GateDecision, GateReason, Message, Purpose, RevocationReview
from tenants.models import Tenant
from tests.messaging.factories import RevocationReviewFactory
from tests.messaging.sending_support import (
    FL,
    IDAHO,
    NY,
    NY_2,
    OK,
    SF,
    grant_marketing,
    sent_marketing,
)

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
SEND = GateVerdict(GateDecision.SEND, "", None)


def at_local(zone: ZoneInfo, hour: int, minute: int = 0, day: int = 10) -> datetime:
    """A Tuesday in June (daylight saving time) at a local wall time, as UTC."""
    return datetime(2025, 6, day, hour, minute, tzinfo=zone).astimezone(UTC)


def defer(reason: str, send_after: datetime) -> GateVerdict:
    return GateVerdict(GateDecision.DEFER, reason, send_after)


def block(reason: str) -> GateVerdict:
    return GateVerdict(GateDecision.BLOCK, reason, None)


def open_review(tenant, phone: str) -> RevocationReview:
    inbound = Message.objects.create(
        tenant=tenant,
        direction="inbound",
        sid="SM" + "0" * 30 + phone[-2:],
        from_number=phone,
        to_number="+15005550006",
        body="please don't text me anymore",
        status="received",
    )
    now = datetime.now(UTC)
    return RevocationReviewFactory(
        tenant=tenant, message=inbound, phone=phone, received_at=now, deadline_at=now + timedelta(days=14)
    )


# --- blocking reasons ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "2125550123", "+1212", "+447700900123", "not a number", "+1 212 555 012"])
def test_invalid_numbers_are_blocked_for_every_purpose(tenant, raw):
    for purpose in Purpose.values:
        assert gate_check(tenant=tenant, to=raw, purpose=purpose) == block(GateReason.INVALID_NUMBER)


def test_numbers_are_normalised_to_e164():
    assert number_parse("+1 (212) 555-0123").e164 == NY
    assert number_parse("2125550123") is None  # national formats are not guessed


def test_suspended_tenant_blocks_everything_but_an_invalid_number_says_so_first(tenant):
    tenant.status = Tenant.Status.SUSPENDED
    tenant.save()
    for purpose in Purpose.values:
        assert gate_check(tenant=tenant, to=NY, purpose=purpose) == block(GateReason.TENANT_SUSPENDED)
    assert gate_check(tenant=tenant, to="+1212", purpose="otp") == block(GateReason.INVALID_NUMBER)


def test_opt_out_blocks_every_purpose_including_otp_until_opt_in(tenant):
    grant_marketing(tenant, NY)
    opt_out_record(tenant=tenant, phone=NY, source="keyword", keyword="STOP")
    for purpose in Purpose.values:
        assert gate_check(tenant=tenant, to=NY, purpose=purpose) == block(GateReason.OPTED_OUT)

    opt_in_record(tenant=tenant, phone=NY, source="keyword", keyword="START")
    noon = at_local(NEW_YORK, 12)
    assert gate_check(tenant=tenant, to=NY, purpose="otp", now=noon) == SEND
    # The opt-out revoked the marketing consent; an opt-in restores none.
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=noon) == block(GateReason.NO_CONSENT)


def test_opt_out_of_another_tenant_does_not_block(tenant, other_tenant):
    opt_out_record(tenant=other_tenant, phone=NY, source="keyword", keyword="STOP")
    assert gate_check(tenant=tenant, to=NY, purpose="otp") == SEND


def test_marketing_needs_a_granted_consent_whose_latest_event_is_granted(tenant):
    noon = at_local(NEW_YORK, 12)
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=noon) == block(GateReason.NO_CONSENT)
    assert gate_check(tenant=tenant, to=NY, purpose="transactional", now=noon) == SEND

    grant_marketing(tenant, NY)
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=noon) == SEND

    from messaging.ledgers.services import consent_record

    consent_record(tenant=tenant, phone=NY, purpose="marketing", action="revoked", method="web_form")
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=noon) == block(GateReason.NO_CONSENT)


def test_unknown_purpose_is_an_error(tenant):
    with pytest.raises(ValueError, match="Unknown purpose"):
        gate_check(tenant=tenant, to=NY, purpose="spam")


# --- revocation under review --------------------------------------------------------------------------


def test_open_revocation_review_defers_marketing_but_not_otp(tenant):
    grant_marketing(tenant, NY)
    review = open_review(tenant, NY)
    noon = at_local(NEW_YORK, 12)
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=noon) == defer(
        GateReason.REVOCATION_PENDING, noon + REVOCATION_RECHECK
    )
    assert gate_check(tenant=tenant, to=NY, purpose="otp", now=noon) == SEND

    review.status = RevocationReview.Status.DISMISSED
    review.save()
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=noon) == SEND


def test_revocation_recheck_lands_inside_the_window(tenant):
    grant_marketing(tenant, NY)
    open_review(tenant, NY)
    late = at_local(NEW_YORK, 20, 30)  # the re-check would be 21:30: wait for the morning
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=late) == defer(
        GateReason.REVOCATION_PENDING, at_local(NEW_YORK, 8, day=11)
    )


# --- quiet hours ----------------------------------------------------------------------------------------


def test_florida_at_2030_is_deferred_while_new_york_sends(tenant):
    for phone in (FL, NY):
        grant_marketing(tenant, phone)
    now = at_local(NEW_YORK, 20, 30)
    verdicts = gate_check_many(tenant=tenant, recipients=[FL, NY], purpose="marketing", now=now)
    assert verdicts == {
        FL: defer(GateReason.QUIET_HOURS, at_local(NEW_YORK, 8, day=11)),
        NY: SEND,
    }


def test_oklahoma_window_is_in_central_time(tenant):
    grant_marketing(tenant, OK)
    now = at_local(ZoneInfo("America/Chicago"), 20, 15)
    assert gate_check(tenant=tenant, to=OK, purpose="marketing", now=now) == defer(
        GateReason.QUIET_HOURS, at_local(ZoneInfo("America/Chicago"), 8, day=11)
    )


def test_otp_and_transactional_at_2300_go_at_once(tenant):
    grant_marketing(tenant, NY)
    night = at_local(NEW_YORK, 23)
    assert gate_check(tenant=tenant, to=NY, purpose="otp", now=night) == SEND
    assert gate_check(tenant=tenant, to=NY, purpose="transactional", now=night) == SEND
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=night) == defer(
        GateReason.QUIET_HOURS, at_local(NEW_YORK, 8, day=11)
    )


def test_early_morning_waits_until_eight_the_same_day(tenant):
    grant_marketing(tenant, NY)
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=at_local(NEW_YORK, 7, 59)) == defer(
        GateReason.QUIET_HOURS, at_local(NEW_YORK, 8)
    )
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=at_local(NEW_YORK, 8)) == SEND
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=at_local(NEW_YORK, 21)).decision == "defer"


def test_number_with_two_zones_must_be_inside_the_window_in_both(tenant):
    assert set(phone_timezone.time_zones_for_number(phonenumbers.parse(IDAHO))) == {
        "America/Boise",
        "America/Los_Angeles",
    }
    grant_marketing(tenant, IDAHO)
    # 07:30 Pacific is 08:30 Mountain: Boise would allow it, Los Angeles not yet.
    assert gate_check(tenant=tenant, to=IDAHO, purpose="marketing", now=at_local(LOS_ANGELES, 7, 30)) == defer(
        GateReason.QUIET_HOURS, at_local(LOS_ANGELES, 8)
    )
    # 20:30 Pacific is 21:30 Mountain: closed in Boise; both open again at 08:00 Pacific.
    assert gate_check(tenant=tenant, to=IDAHO, purpose="marketing", now=at_local(LOS_ANGELES, 20, 30)) == defer(
        GateReason.QUIET_HOURS, at_local(LOS_ANGELES, 8, day=11)
    )
    assert gate_check(tenant=tenant, to=IDAHO, purpose="marketing", now=at_local(LOS_ANGELES, 12)) == SEND


def test_non_geographic_number_falls_back_to_the_tenant_time_zone(tenant):
    toll_free = "+18005550199"  # every NANP zone, Guam to Adak: never all inside together
    grant_marketing(tenant, toll_free)
    tenant.timezone = "America/Los_Angeles"
    tenant.save()
    assert gate_check(tenant=tenant, to=toll_free, purpose="marketing", now=at_local(LOS_ANGELES, 12)) == SEND
    assert gate_check(tenant=tenant, to=toll_free, purpose="marketing", now=at_local(LOS_ANGELES, 22)) == defer(
        GateReason.QUIET_HOURS, at_local(LOS_ANGELES, 8, day=11)
    )


def test_policy_window_and_region_windows_only_narrow(tenant):
    for phone in (SF, FL):
        grant_marketing(tenant, phone)
    policy = sending_policy_get(tenant=tenant)
    policy.region_windows = {"US-CA": ["09:00", "20:00"], "US-FL": ["07:00", "23:00"], "US-TX": "garbage"}
    policy.save()
    assert gate_check(tenant=tenant, to=SF, purpose="marketing", now=at_local(LOS_ANGELES, 8, 30)) == defer(
        GateReason.QUIET_HOURS, at_local(LOS_ANGELES, 9)
    )
    # A region window can't loosen Florida's statutory 20:00.
    assert gate_check(tenant=tenant, to=FL, purpose="marketing", now=at_local(NEW_YORK, 20, 30)).decision == "defer"
    assert gate_check(tenant=tenant, to=FL, purpose="marketing", now=at_local(NEW_YORK, 7, 30)).decision == "defer"

    policy.quiet_start, policy.quiet_end = "10:00", "18:00"
    policy.save()
    assert gate_check(tenant=tenant, to=SF, purpose="marketing", now=at_local(LOS_ANGELES, 9, 30)) == defer(
        GateReason.QUIET_HOURS, at_local(LOS_ANGELES, 10)
    )


def test_informational_follows_marketing_rules_only_when_the_policy_says_so(tenant):
    night = at_local(NEW_YORK, 23)
    assert gate_check(tenant=tenant, to=NY, purpose="informational", now=night) == SEND
    policy = sending_policy_get(tenant=tenant)
    policy.informational_follows_marketing_rules = True
    policy.save()
    # Quiet hours apply; marketing consent is still not required for informational messages.
    assert gate_check(tenant=tenant, to=NY, purpose="informational", now=night) == defer(
        GateReason.QUIET_HOURS, at_local(NEW_YORK, 8, day=11)
    )


# --- frequency cap --------------------------------------------------------------------------------------


def test_frequency_cap_defers_until_the_oldest_of_the_last_24h_is_a_day_old(tenant):
    grant_marketing(tenant, NY)
    now = at_local(NEW_YORK, 12)
    oldest = now - timedelta(hours=20)
    for accepted_at in (oldest, now - timedelta(hours=10), now - timedelta(hours=1)):
        sent_marketing(tenant, NY, accepted_at=accepted_at)
    sent_marketing(tenant, NY, accepted_at=now - timedelta(hours=30))  # outside the window
    sent_marketing(tenant, NY, accepted_at=now - timedelta(hours=2), purpose="otp")  # not capped
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=now) == defer(
        GateReason.FREQUENCY_CAP, oldest + timedelta(hours=24)
    )
    assert gate_check(tenant=tenant, to=NY, purpose="otp", now=now) == SEND
    assert gate_check(tenant=tenant, to=NY_2, purpose="marketing", now=now) == block(GateReason.NO_CONSENT)


def test_frequency_cap_end_at_night_waits_for_the_morning(tenant):
    grant_marketing(tenant, NY)
    now = at_local(NEW_YORK, 12)
    oldest = at_local(NEW_YORK, 22, day=9)  # a day later it is 22:00: quiet hours
    for minutes in (0, 30, 60):
        sent_marketing(tenant, NY, accepted_at=oldest + timedelta(minutes=minutes))
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=now) == defer(
        GateReason.FREQUENCY_CAP, at_local(NEW_YORK, 8, day=11)
    )


def test_queued_messages_count_against_the_cap_and_a_batch_counts_its_own_rows(tenant):
    grant_marketing(tenant, NY)
    now = at_local(NEW_YORK, 16)
    sent_marketing(tenant, NY, accepted_at=now - timedelta(hours=5))
    Message.objects.create(
        tenant=tenant,
        direction="outbound",
        to_number=NY,
        from_number="+15005550006",
        body="queued",
        purpose="marketing",
        status="pending",
        gate_decision="send",
    )
    results = gate_evaluate(tenant=tenant, recipients=[NY, NY], purpose="marketing", now=now)
    assert results[0] == (NY, SEND)
    assert results[1] == (NY, defer(GateReason.FREQUENCY_CAP, now + timedelta(hours=19)))


def test_cap_zero_means_no_cap(tenant):
    grant_marketing(tenant, NY)
    now = at_local(NEW_YORK, 12)
    for hours_ago in range(1, 6):
        sent_marketing(tenant, NY, accepted_at=now - timedelta(hours=hours_ago))
    policy = sending_policy_get(tenant=tenant)
    policy.frequency_cap = 0
    policy.save()
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=now) == SEND


def test_reasons_come_in_order(tenant):
    """Quiet hours and a cap together: the reason is quiet hours, the wait covers both."""
    grant_marketing(tenant, NY)
    now = at_local(NEW_YORK, 22)
    oldest = at_local(NEW_YORK, 10)  # its 24 h end at 10:00 tomorrow, after the 08:00 opening
    for accepted_at in (oldest, oldest + timedelta(hours=1), oldest + timedelta(hours=2)):
        sent_marketing(tenant, NY, accepted_at=accepted_at)
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=now) == defer(
        GateReason.QUIET_HOURS, oldest + timedelta(hours=24)
    )
    opt_out_record(tenant=tenant, phone=NY, source="admin")
    assert gate_check(tenant=tenant, to=NY, purpose="marketing", now=now) == block(GateReason.OPTED_OUT)


# --- batching -------------------------------------------------------------------------------------------


def numbers(count: int, area: str = "212") -> list[str]:
    found = []
    line = 0
    while len(found) < count:
        candidate = f"+1{area}{200 + line // 10000:03d}{line % 10000:04d}"
        line += 1
        if number_parse(candidate):
            found.append(candidate)
    return found


def query_count(tenant, recipients, purpose) -> int:
    with CaptureQueriesContext(connection) as captured:
        gate_check_many(tenant=tenant, recipients=recipients, purpose=purpose, now=at_local(NEW_YORK, 12))
    return len(captured)


@pytest.mark.parametrize("purpose", ["marketing", "otp"])
def test_batched_gate_makes_a_constant_number_of_queries(tenant, purpose, django_assert_max_num_queries):
    many = numbers(3000)
    for phone in many[:50]:
        grant_marketing(tenant, phone)
    opt_out_record(tenant=tenant, phone=many[7], source="admin")
    open_review(tenant, many[8])
    sent_marketing(tenant, many[9], accepted_at=at_local(NEW_YORK, 11))
    sending_policy_get(tenant=tenant)

    one = query_count(tenant, many[:1], purpose)
    # +2 at most for the GDPR suppression look-up (tenant key, then hashes)
    assert one <= (7 if purpose == "marketing" else 4)
    with django_assert_max_num_queries(one):
        verdicts = gate_check_many(tenant=tenant, recipients=many[:500], purpose=purpose, now=at_local(NEW_YORK, 12))
    assert verdicts[many[7]] == block(GateReason.OPTED_OUT)
    assert query_count(tenant, many, purpose) == one  # above the IN-list limit: whole-tenant reads

    expected_sends = 48 if purpose == "marketing" else 499
    assert sum(v.sends for v in verdicts.values()) == expected_sends
    verdicts = gate_check_many(tenant=tenant, recipients=many, purpose=purpose, now=at_local(NEW_YORK, 12))
    assert verdicts[many[7]] == block(GateReason.OPTED_OUT)
    if purpose == "marketing":
        assert verdicts[many[8]].reason == GateReason.REVOCATION_PENDING
        assert verdicts[many[100]] == block(GateReason.NO_CONSENT)


def test_gate_of_one_equals_batch_of_one(tenant):
    grant_marketing(tenant, FL)
    now = at_local(NEW_YORK, 20, 30)
    assert (
        gate_check(tenant=tenant, to=FL, purpose="marketing", now=now)
        == gate_check_many(tenant=tenant, recipients=[FL], purpose="marketing", now=now)[FL]
    )


def test_batched_gate_is_fast(tenant):
    many = numbers(20000, area="305") + numbers(20000, area="212")
    sending_policy_get(tenant=tenant)
    started = time.perf_counter()
    verdicts = gate_check_many(tenant=tenant, recipients=many, purpose="otp", now=at_local(NEW_YORK, 12))
    elapsed = time.perf_counter() - started
    assert len(verdicts) == 40000
    assert 40000 / elapsed > 5000, f"{40000 / elapsed:.0f} recipients/s"
