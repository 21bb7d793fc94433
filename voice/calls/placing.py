"""Outbound calls from the portal: `call_place` (the request: gate, row, audit, enqueue) and
`call_dial` (the worker: the call at Twilio, exactly once).

Every call the portal places speaks with an artificial or prerecorded voice (a flow or a spoken
message), so it goes through `messaging.compliance.calls.call_gate_check` (TCPA): blocked calls
keep their row with the gate's reason, like blocked messages. With a flow, the Call row (and its
flow version) exists before Twilio is asked, and Twilio fetches the flow from the inbound webhook
with `?call=<id>`, so the call runs the version it was placed with. Status callbacks carry the
same `?call=`, which attaches the SID even if the worker died before saving it.

A dial is claimed (`dial_started_at`) before Twilio is called and never repeated once it may have
reached Twilio: a duplicated phone call is worse than a lost one, which the admin sees as failed
and can place again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from twilio.twiml.voice_response import VoiceResponse

from messaging.compliance.calls import call_gate_check
from messaging.compliance.gate import GateVerdict, gate_check
from messaging.delivery.enqueue import task_delay
from messaging.models import GateDecision
from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.phones import phone_mask
from tenants.services import audit_record
from tenants.twilio import TwilioError, tenant_client, twilio_errors

from ..models import Call, CallEvent, CallFlowVersion
from . import statuses

logger = logging.getLogger("commsportal.voice")

__all__ = ["CALL_DIAL_TASK", "CallPlaced", "DialOutcome", "call_dial", "call_place"]

#: Task name as queued messages know it: never rename.
CALL_DIAL_TASK = "voice.tasks.call_dial_task"
#: Progress events the portal asks Twilio to report (all of them).
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
UNQUEUED_REASON = "Not placed: the worker was unreachable. Place the call again."
MAYBE_PLACED_REASON = "Twilio may have placed the call; its status callbacks will tell."


@dataclass(frozen=True)
class CallPlaced:
    call: Call
    verdict: GateVerdict


class DialOutcome:
    PLACED = "placed"
    BLOCKED = "blocked"
    SKIPPED = "skipped"  # not pending, or another worker claimed it
    FAILED = "failed"
    RETRY = "retry"  # certainly not placed and worth trying again


def call_place(
    *,
    tenant: Tenant,
    to: str,
    from_number: str,
    purpose: str,
    audit: AuditContext,
    flow_version: CallFlowVersion | None = None,
    message: str = "",
    callee_requested: bool = False,
) -> CallPlaced:
    """Place a call from `from_number` to `to` that runs `flow_version` or says `message`.

    The gate decides now (module docstring); `callee_requested` is the flow editor's test call
    to the admin's own phone, which they asked for: opt-outs still block it, but no consent is
    looked up. The row is created `pending` (or `blocked`), audited (`call.place`), and the dial
    task is published after commit. Raises ValueError when neither or both of flow and message
    are given, or the flow version is another tenant's.
    """
    if (flow_version is None) == (not message.strip()):
        raise ValueError("A call runs either a call flow or a spoken message.")
    if flow_version is not None and flow_version.tenant_id != tenant.pk:
        raise ValueError("Unknown call flow.")
    verdict = _gate(tenant=tenant, to=to, purpose=purpose, callee_requested=callee_requested)
    now = timezone.now()
    with transaction.atomic():
        call = Call.objects.create(
            tenant=tenant,
            direction=Call.Direction.OUTBOUND,
            from_number=from_number,
            to_number=to,
            status=statuses.PENDING if verdict.sends else statuses.BLOCKED,
            status_updated_at=now,
            purpose=purpose,
            gate_decision=verdict.decision,
            gate_reason=verdict.reason,
            flow_version=flow_version,
            spoken_message=message.strip(),
            callee_requested=callee_requested,
            created_by=audit.actor,
        )
        if not verdict.sends:
            _event(call, statuses.BLOCKED, {"gate_reason": verdict.reason})
        audit_record(
            action="call.test" if callee_requested else "call.place",
            tenant=tenant,
            audit=audit,
            target=phone_mask(to),
            details={
                "call_id": call.pk,
                "purpose": purpose,
                "flow_version_id": flow_version.pk if flow_version else None,
                "gate_decision": verdict.decision,
                "gate_reason": verdict.reason,
            },
        )
        if verdict.sends:
            transaction.on_commit(lambda: _publish(call.pk), robust=True)
    return CallPlaced(call=call, verdict=verdict)


def _publish(call_id: int) -> None:
    if not task_delay(CALL_DIAL_TASK, call_id):
        Call.all_tenants.filter(pk=call_id, status=statuses.PENDING, dial_started_at__isnull=True).update(
            status=statuses.FAILED, failure_reason=UNQUEUED_REASON, status_updated_at=timezone.now()
        )


def _event(call: Call, status: str, payload: dict) -> None:
    CallEvent.objects.for_tenant(call.tenant).get_or_create(
        tenant=call.tenant, call=call, status=status, defaults={"occurred_at": timezone.now(), "payload": payload}
    )


def status_callback_url(call_id: int) -> str:
    return f"{settings.PUBLIC_BASE_URL}{reverse('webhook_voice_status')}?call={call_id}"


def flow_url(call_id: int) -> str:
    """Where Twilio fetches a placed call's flow: the inbound webhook, told which call it is."""
    return f"{settings.PUBLIC_BASE_URL}{reverse('webhook_voice_inbound')}?call={call_id}"


def spoken_twiml(message: str) -> str:
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)


def call_dial(*, call_id: int) -> str:
    """Place a pending call at Twilio (the worker's half of `call_place`), at most once.

    The gate looks again first (an opt-out may have arrived meanwhile). Returns a `DialOutcome`;
    `RETRY` when Twilio certainly did not get the request and may be asked again (the claim is
    released), `FAILED` when it refused the call or may have acted on it.
    """
    now = timezone.now()
    claimed = Call.all_tenants.filter(
        pk=call_id, status=statuses.PENDING, sid__isnull=True, dial_started_at__isnull=True
    ).update(dial_started_at=now)
    if not claimed:
        return DialOutcome.SKIPPED
    call = Call.all_tenants.select_related("tenant").get(pk=call_id)
    tenant = call.tenant
    verdict = _gate_again(call)
    if not verdict.sends:
        with transaction.atomic():
            Call.objects.for_tenant(tenant).filter(pk=call.pk, status=statuses.PENDING).update(
                status=statuses.BLOCKED,
                gate_decision=verdict.decision,
                gate_reason=verdict.reason,
                status_updated_at=now,
            )
            _event(call, statuses.BLOCKED, {"gate_reason": verdict.reason, "at": "dial"})
        return DialOutcome.BLOCKED
    params = {
        "to": call.to_number,
        "from_": call.from_number,
        "status_callback": status_callback_url(call.pk),
        "status_callback_event": STATUS_EVENTS,
        "status_callback_method": "POST",
    }
    if call.flow_version_id:
        params["url"] = flow_url(call.pk)
    else:
        params["twiml"] = spoken_twiml(call.spoken_message)
    try:
        with twilio_errors():
            placed = tenant_client(tenant).calls.create(**params)
    except TwilioError as exc:
        return _dial_failed(call, exc)
    calls = Call.objects.for_tenant(tenant)
    calls.filter(pk=call.pk, sid__isnull=True).update(sid=placed.sid)
    calls.filter(pk=call.pk, status=statuses.PENDING).update(status=statuses.QUEUED, status_updated_at=timezone.now())
    logger.info("voice.call.placed", extra={"tenant": tenant.slug, "call_id": call.pk})
    return DialOutcome.PLACED


def _gate_again(call: Call) -> GateVerdict:
    return _gate(tenant=call.tenant, to=call.to_number, purpose=call.purpose, callee_requested=call.callee_requested)


def _gate(*, tenant: Tenant, to: str, purpose: str, callee_requested: bool) -> GateVerdict:
    if not callee_requested:
        return call_gate_check(tenant=tenant, to=to, purpose=purpose)
    verdict = gate_check(tenant=tenant, to=to, purpose=purpose)
    if verdict.decision == GateDecision.DEFER:
        return GateVerdict(GateDecision.SEND)  # quiet hours and caps protect others, not a requested test
    return verdict


def _dial_failed(call: Call, exc: TwilioError) -> str:
    calls = Call.objects.for_tenant(call.tenant).filter(pk=call.pk, status=statuses.PENDING)
    if exc.retryable and not exc.maybe_sent:
        calls.update(dial_started_at=None, failure_reason=str(exc)[:500])
        return DialOutcome.RETRY
    reason = MAYBE_PLACED_REASON if exc.maybe_sent else str(exc)
    if not exc.maybe_sent:
        calls.update(status=statuses.FAILED, failure_reason=reason, status_updated_at=timezone.now())
    else:
        calls.update(failure_reason=reason)
    logger.warning("voice.call.dial_failed", extra={"call_id": call.pk, "code": exc.code})
    return DialOutcome.FAILED
