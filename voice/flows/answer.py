"""Answering calls with a number's flow: the inbound and gather webhooks' one service each.

No network call happens here (Twilio waits for the TwiML, 15 s at most, and the caller hears
silence meanwhile): a number missing from the inventory is answered with the default and a sync
is *enqueued* (by task name, throttled per tenant), never run on the request path.

Which version answers: the Call row stores the flow version at the first inbound request, and
every later step of that call reads it from there, so an admin's edit mid-call never changes
what that caller goes through.
"""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from twilio.twiml.voice_response import VoiceResponse

from messaging.delivery.enqueue import task_delay
from messaging.ledgers.reachability import number_is_opted_out
from messaging.ledgers.services import opt_out_record
from messaging.models import OptOutEvent
from tenants.models import PhoneNumber, Tenant
from tenants.phones import phone_parse, phone_parse_sender, tenant_phone_region

from ..calls.records import call_get_or_create
from ..models import Call, CallFlow, CallFlowVersion
from .hours import hours_open
from .services import flow_context
from .twiml import Outcome, render_answer, render_default, render_reject, render_step

logger = logging.getLogger("commsportal.voice")

#: Task name as the worker knows it (tenants/tasks.py): never rename.
NUMBERS_SYNC_TASK = "tenants.tasks.numbers_sync_tenant"
#: One sync per tenant per this many seconds, however many calls reach unsynced numbers.
SYNC_THROTTLE_SECONDS = 600
HIDDEN_CALLER_OPT_OUT = (
    "Sorry, your number is hidden, so we cannot take it off our lists. "
    "Please call again from your own number, or text STOP to this number. Goodbye."
)


def numbers_sync_request(*, tenant: Tenant) -> bool:
    """Ask a worker to re-sync the tenant's numbers, at most once per throttle window.

    Returns whether a sync was requested now."""
    if not cache.add(f"voice:numbers-sync:{tenant.account_sid}", 1, timeout=SYNC_THROTTLE_SECONDS):
        return False
    transaction.on_commit(lambda: task_delay(NUMBERS_SYNC_TASK, tenant.pk), robust=True)
    logger.info("voice.number_unsynced", extra={"tenant": tenant.slug})
    return True


def _status(value: str) -> str:
    return value if value in Call.Status.values else Call.Status.RINGING


def _pin_version(*, tenant: Tenant, call: Call, version: CallFlowVersion, path: dict | None) -> Call:
    """Store the answering version and the first path step on the call, once (a retried inbound
    request finds the version already there and changes nothing)."""
    if call.flow_version_id is not None:
        return call
    entry = {**(path or {}), "at": timezone.now().isoformat()}
    calls = Call.objects.for_tenant(tenant)
    if calls.filter(pk=call.pk, flow_version__isnull=True).update(
        flow_version=version, menu_path=[*call.menu_path, entry]
    ):
        call.flow_version = version
        return call
    return calls.select_related("flow_version").get(pk=call.pk)  # a concurrent request pinned one first


def _current_version(*, tenant: Tenant, number: str) -> CallFlowVersion | None:
    flow = (
        CallFlow.objects.for_tenant(tenant)
        .filter(phone_number__phone_number=number, phone_number__released_at__isnull=True)
        .select_related("current_version")
        .first()
    )
    return flow.current_version if flow is not None else None


def _answer_with(*, tenant: Tenant, call: Call, version: CallFlowVersion, our_number: str, caller: str, now) -> str:
    definition = version.definition
    is_open = call.direction == Call.Direction.OUTBOUND or hours_open(
        definition["hours"], now=now, zone=tenant.timezone, country=tenant_phone_region(tenant)
    )
    outcome = render_answer(
        definition, flow_context(tenant=tenant, our_number=our_number, caller=caller), is_open=is_open
    )
    call = _pin_version(tenant=tenant, call=call, version=version, path=outcome.path)
    if call.flow_version_id != version.pk:  # a retried request: answer with what the call already has
        return _answer_with(
            tenant=tenant, call=call, version=call.flow_version, our_number=our_number, caller=caller, now=now
        )
    return str(_carry_out(tenant=tenant, call=call, outcome=outcome, caller=caller, our_number=our_number))


def inbound_answer(*, tenant: Tenant, params, call_ref: str | None, now=None) -> str:
    """TwiML for a call reaching one of the tenant's numbers (or an outbound call the portal
    placed, `call_ref` being its Call's pk from the `?call=` of the URL)."""
    now = now or timezone.now()
    if call_ref is not None:
        return _outbound_answer(tenant=tenant, params=params, call_ref=call_ref, now=now)
    sid, caller, called = params.get("CallSid", "").strip(), params.get("From", ""), params.get("To", "")
    try:
        our_number = phone_parse(called)
    except ValidationError:
        return str(render_reject())  # a SIP address or a client: not a number this tenant has
    # Deliberately across tenants: "another tenant's number" and "not synced yet" differ.
    holders = PhoneNumber.all_tenants.filter(phone_number=our_number, released_at__isnull=True)
    owner = holders.order_by("-synced_at").values_list("tenant_id", flat=True).first()
    if owner is not None and owner != tenant.pk:
        return str(render_reject())  # the inventory says it is another tenant's
    if owner is None and PhoneNumber.objects.for_tenant(tenant).filter(phone_number=our_number).exists():
        numbers_sync_request(tenant=tenant)  # released here: if it came back, the sync will say so
        return str(render_reject())
    try:
        call, _ = call_get_or_create(
            tenant=tenant,
            sid=sid,
            direction=params.get("Direction", "inbound"),
            from_number=phone_parse_sender(caller),
            to_number=our_number,
            status=_status(params.get("CallStatus", "")),
        )
    except Call.DoesNotExist:
        return str(render_reject())  # the CallSid is another tenant's
    if owner is None:
        numbers_sync_request(tenant=tenant)  # in the subaccount (Twilio signed for it) but not synced yet
        return str(render_default(brand=tenant.name))
    version = call.flow_version or _current_version(tenant=tenant, number=our_number)
    if version is None:
        return str(render_default(brand=tenant.name))
    return _answer_with(
        tenant=tenant, call=call, version=version, our_number=our_number, caller=phone_parse_sender(caller), now=now
    )


def _outbound_answer(*, tenant: Tenant, params, call_ref: str, now) -> str:
    """An outbound call the portal placed with a flow: the Call row says which version."""
    call = Call.objects.for_tenant(tenant).filter(pk=int(call_ref)).first() if call_ref.isdigit() else None
    if call is None:
        response = VoiceResponse()
        response.hangup()
        return str(response)
    sid = params.get("CallSid", "")
    if not call.sid and sid:
        try:
            with transaction.atomic():
                Call.objects.for_tenant(tenant).filter(pk=call.pk, sid__isnull=True).update(sid=sid)
        except IntegrityError:  # a status callback created a row for this SID first: keep ours as is
            logger.warning("voice.call_sid_taken", extra={"tenant": tenant.slug, "call": call.pk})
    version = call.flow_version or _current_version(tenant=tenant, number=call.from_number)
    if version is None:
        response = VoiceResponse()
        response.hangup()
        return str(response)
    return _answer_with(
        tenant=tenant, call=call, version=version, our_number=call.from_number, caller=call.to_number, now=now
    )


def _parties(call: Call) -> tuple[str, str]:
    """(our number, the other party) of a call, whichever way it goes."""
    if call.direction == Call.Direction.OUTBOUND:
        return call.from_number, call.to_number
    return call.to_number, call.from_number


def _carry_out(*, tenant: Tenant, call: Call, outcome: Outcome, caller: str, our_number: str) -> VoiceResponse:
    """Run the outcome's side effects; the TwiML to return (changed when one cannot be done)."""
    if "opt_out" not in outcome.effects:
        return outcome.response
    try:
        phone = phone_parse(caller)
    except ValidationError:
        response = VoiceResponse()
        response.say(HIDDEN_CALLER_OPT_OUT)
        response.hangup()
        return response
    if not number_is_opted_out(tenant=tenant, phone=phone):  # a retried request records once
        opt_out_record(
            tenant=tenant,
            phone=phone,
            source=OptOutEvent.Source.VOICE_KEYPRESS,
            sender=our_number,
            reason=f"Key press in the call menu (call {call.sid or call.pk}).",
        )
    return outcome.response


#: Twilio's `I-Twilio-Idempotency-Token` is a UUID; anything longer is not one of its tokens.
REQUEST_TOKEN_CHARS = 64


def gather_answer(
    *,
    tenant: Tenant,
    call_sid: str,
    step: str,
    digits: str,
    attempt: str,
    dial_status: str = "",
    request_token: str = "",
) -> str:
    """TwiML continuing a call at `step` with the caller's `digits` (or, after a forward, the
    DialCallStatus), from the call's own version.

    `request_token`: the request's `I-Twilio-Idempotency-Token`, the same on Twilio's retries of
    it. The step joins the menu path once per token: a retried key press is answered again but
    not recorded twice, while the same key pressed again at the same prompt (a new request) is.
    Its side effects are idempotent on their own (`_carry_out`)."""
    call = Call.objects.for_tenant(tenant).filter(sid=call_sid).select_related("flow_version").first()
    if call is None or call.flow_version is None:
        response = VoiceResponse()
        response.say("Sorry, something went wrong with this call. Goodbye.")
        response.hangup()
        return str(response)
    our_number, caller = _parties(call)
    ctx = flow_context(tenant=tenant, our_number=our_number, caller=caller)
    outcome = render_step(
        call.flow_version.definition,
        ctx,
        step=step,
        digits="".join(ch for ch in digits if ch in "0123456789*#")[:1],
        attempt=int(attempt) if attempt.isdigit() and len(attempt) < 3 else 1,
        dial_status=dial_status,
    )
    with transaction.atomic():
        locked = Call.objects.for_tenant(tenant).select_for_update().get(pk=call.pk)
        token = request_token[:REQUEST_TOKEN_CHARS]
        if not token or not any(isinstance(e, dict) and e.get("request") == token for e in locked.menu_path):
            entry = {**(outcome.path or {}), "at": timezone.now().isoformat()}
            if token:
                entry["request"] = token
            locked.menu_path = [*locked.menu_path, entry]
            locked.save(update_fields=["menu_path"])
        response = _carry_out(tenant=tenant, call=locked, outcome=outcome, caller=caller, our_number=our_number)
    return str(response)
