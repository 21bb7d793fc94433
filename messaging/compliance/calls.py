"""The compliance gate for calls the portal places (TCPA, 47 USC 227).

A call placed from the portal always speaks with an artificial or prerecorded voice (a flow's
`<Say>`/`<Play>`, or a spoken message), so on top of everything `gate_check` applies to a text
to the same number and purpose (opted out, invalid, tenant suspended, no marketing consent,
quiet hours, revocation pending, frequency cap), a call:

* to a number that may be a mobile (phonenumbers cannot tell US mobiles from landlines:
  ``FIXED_LINE_OR_MOBILE`` counts as mobile, as does any type it does not know) needs the
  person's prior express consent: the number's latest consent event for the call's purpose is
  ``granted`` (marketing consent covers every purpose) — reason ``no_consent``;
* that is marketing needs prior express WRITTEN consent: the latest marketing grant was not
  taken verbally — reason ``no_consent``.

A call is placed now or not at all: where a text would be deferred (quiet hours, a pending
revocation, the cap), the call is blocked with the same reason, and the admin may place it again
later. The reason codes are the gate's own (`GateReason`).
"""

from __future__ import annotations

from datetime import datetime

import phonenumbers

from tenants.models import Tenant

from ..models import ConsentEvent, GateDecision, GateReason, Purpose
from .gate import GateVerdict, gate_check
from .numbers import number_parse

__all__ = ["WRITTEN_METHODS", "call_gate_check", "number_may_be_mobile"]

#: Consent methods that leave a written (E-SIGN) record; a verbal grant is not written consent.
WRITTEN_METHODS: frozenset[str] = frozenset(ConsentEvent.Method.values) - {ConsentEvent.Method.VERBAL}

_NOT_MOBILE = frozenset(
    {
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.TOLL_FREE,
        phonenumbers.PhoneNumberType.PREMIUM_RATE,
        phonenumbers.PhoneNumberType.SHARED_COST,
        phonenumbers.PhoneNumberType.UAN,
    }
)


def number_may_be_mobile(phone: str) -> bool:
    """Whether `phone` may ring a mobile (TCPA's "cellular telephone service"): conservative."""
    parsed = number_parse(phone)
    return parsed is None or phonenumbers.number_type(parsed.parsed) not in _NOT_MOBILE


def call_gate_check(*, tenant: Tenant, to: str, purpose: str, now: datetime | None = None) -> GateVerdict:
    """The gate's verdict for one prerecorded/artificial-voice call (module docstring):
    `send` or `block`, never `defer`."""
    verdict = gate_check(tenant=tenant, to=to, purpose=purpose, now=now)
    if verdict.decision == GateDecision.DEFER:
        return GateVerdict(GateDecision.BLOCK, verdict.reason)
    if not verdict.sends:
        return verdict
    parsed = number_parse(to)
    if number_may_be_mobile(parsed.e164) and not _call_consented(tenant, parsed.e164, purpose):
        return GateVerdict(GateDecision.BLOCK, GateReason.NO_CONSENT)
    return verdict


def _call_consented(tenant: Tenant, phone: str, purpose: str) -> bool:
    """The number's latest consent for `purpose` (or marketing) is a grant; written for marketing."""
    purposes = {purpose, Purpose.MARKETING}
    latest: dict[str, ConsentEvent] = {}
    events = ConsentEvent.objects.for_tenant(tenant).filter(phone=phone, purpose__in=purposes)
    for event in events.order_by("captured_at", "id").only("purpose", "action", "method"):
        latest[event.purpose] = event
    granted = {p: e for p, e in latest.items() if e.action == ConsentEvent.Action.GRANTED}
    if purpose == Purpose.MARKETING:
        grant = granted.get(Purpose.MARKETING)
        return grant is not None and grant.method in WRITTEN_METHODS
    return bool(granted)
