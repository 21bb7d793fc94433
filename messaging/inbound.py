"""What Twilio tells the portal about messages: inbound SMS, delivery status callbacks, and the
revocation review queue that free-text "please stop" messages land in.

Every function here must survive Twilio's delivery model: webhooks are retried and duplicated
(even after a 2xx), status callbacks arrive in any order, and two deliveries of the same event
can run at the same time. So each write is keyed on something Twilio guarantees unique (the
MessageSid, or (MessageSid, MessageStatus)), happens inside one transaction, and treats the
database's unique constraints as the final arbiter of races.

Message SIDs are globally unique at Twilio, but the portal only ever looks them up within the
tenant whose credentials signed the webhook (`for_tenant(hook.tenant)`). A signed webhook that
names a SID the portal already holds under *another* tenant cannot come from Twilio (each
subaccount only reports its own messages): it is a misconfiguration or someone holding this
tenant's auth token. It changes nothing, is logged as `twilio.webhook.foreign_message_sid`, and
is answered like a duplicate (empty TwiML / 204), not 403: the signature was valid, and a
distinct answer would tell the caller that the SID exists elsewhere.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from twilio.twiml.messaging_response import MessagingResponse

from tenants.models import Tenant
from tenants.phones import phone_mask, phone_normalize
from tenants.services import audit_record

from . import keywords, statuses
from .business_days import add_business_days, country_for_phone
from .models import (
    ConsentEvent,
    Message,
    MessageEvent,
    OptOutEvent,
    Purpose,
    RevocationReview,
    TenantKeyword,
)
from .selectors import is_opted_out
from .services import consent_record, disclosure_get_or_create, opt_in_record, opt_out_record

logger = logging.getLogger("commsportal.messaging")

__all__ = [
    "CALLBACK_STATUSES",
    "ERROR_OPTED_OUT",
    "MARKETING_OFFER_WINDOW",
    "REVOCATION_BUSINESS_DAYS",
    "InboundResult",
    "inbound_message_receive",
    "marketing_offer_line",
    "revocation_confirm",
    "revocation_dismiss",
    "revocation_open_list",
    "status_callback_apply",
]

#: FCC 24-24: a revocation must be honoured within 10 business days.
REVOCATION_BUSINESS_DAYS = 10
#: How long the START confirmation's marketing offer stays open for a YES.
MARKETING_OFFER_WINDOW = timedelta(hours=24)
MARKETING_CONSENT_SOURCE = "START confirmation"
#: Twilio error 21610: the recipient texted STOP to this sender; Twilio blocks every send.
ERROR_OPTED_OUT = 21610
ERROR_21610_REASON = "Twilio answered 21610: recipient had opted out at Twilio"

#: Statuses Twilio may report in a status callback. `pending` and `blocked` are the portal's
#: own and never come from Twilio.
CALLBACK_STATUSES: frozenset[str] = (statuses.OUTBOUND_STATUSES | statuses.INBOUND_STATUSES) - {
    statuses.PENDING,
    statuses.BLOCKED,
}

# Words that re-subscribe but do not answer the marketing offer: the offer asks for YES, and a
# second START is a person re-sending the keyword, not agreeing to a disclosure.
_RESUBSCRIBE_ONLY = frozenset({"START", "UNSTOP"})
_MEDIA_URL = re.compile(r"^MediaUrl(\d+)$")
# Fields of an inbound payload kept out of the timeline event: the body and media are personal
# data that retention purges from the message row, so no copy may linger in a JSON payload.
_INBOUND_PAYLOAD_EXCLUDED = re.compile(r"^(Body|MediaUrl\d+)$")


@dataclass(frozen=True)
class InboundResult:
    """What `inbound_message_receive` did, and what (if anything) the portal answers."""

    message: Message | None  # None: the SID belongs to another tenant (nothing was stored)
    created: bool  # False for a retried or duplicated delivery: nothing was done again
    keyword: str = ""  # opt_out, opt_in, help or ""
    reply: str = ""  # the text the portal answers with; "" answers an empty <Response/>
    review: RevocationReview | None = None
    consent: ConsentEvent | None = None  # marketing consent captured by a YES to the offer

    def twiml(self) -> str:
        """The TwiML answer: one <Message> with the reply, or an empty <Response/>."""
        response = MessagingResponse()
        if self.reply:
            response.message(self.reply)
        return str(response)


def marketing_offer_line(disclosure: str) -> str:
    """The line the START confirmation appends when the tenant offers marketing messages."""
    return f"Reply YES to also get offers: {disclosure}"


# --- Inbound messages ---------------------------------------------------------------------------


def inbound_message_receive(*, tenant: Tenant, params: Mapping) -> InboundResult:
    """Store an inbound SMS/MMS once per MessageSid, then act on its keyword or revocation.

    A retried or duplicated delivery finds the stored row and does nothing (empty reply), so a
    person never gets two answers. Everything (the message, its ledger events, the review)
    commits in one transaction: a failure stores nothing and Twilio's retry starts afresh.
    Two concurrent deliveries race on the unique `sid`; the loser's insert fails (PostgreSQL
    makes it wait for the winner's commit first), it then finds the winner's row and answers
    as a duplicate.

    Keywords follow the tenant's `keyword_replies`: the ledger is written the same way in
    both modes, but only in `portal` mode does the answer carry the HELP/STOP/START text
    (in `twilio` mode Twilio answers keywords itself).
    """
    sid = _text(params, "MessageSid")
    fields = _inbound_fields(tenant=tenant, params=params)
    try:
        with transaction.atomic():
            message, created = Message.objects.for_tenant(tenant).get_or_create(sid=sid, defaults=fields)
            if not created:
                logger.info("twilio.inbound.duplicate", extra={"tenant": tenant.slug, "sid": sid})
                return InboundResult(message=message, created=False, keyword=message.keyword)
            MessageEvent.objects.create(
                tenant=tenant,
                message=message,
                status=statuses.RECEIVED,
                occurred_at=message.created_at,
                payload={k: v for k, v in _params_dict(params).items() if not _INBOUND_PAYLOAD_EXCLUDED.match(k)},
            )
            return _inbound_process(tenant=tenant, message=message, params=params)
    except IntegrityError:
        # get_or_create re-reads after a failed insert; still nothing under this tenant means
        # the SID is held by another tenant (see the module docstring).
        if not _sid_held_elsewhere(tenant=tenant, sid=sid):
            raise
        return InboundResult(message=None, created=False)


def _inbound_fields(*, tenant: Tenant, params: Mapping) -> dict:
    num_media = _int_or_none(params.get("NumMedia")) or 0
    return {
        "tenant": tenant,
        "direction": Message.Direction.INBOUND,
        "messaging_service_sid": _text(params, "MessagingServiceSid")[:34],
        "from_number": _phone(_text(params, "From")),
        "to_number": _phone(_text(params, "To")),
        "body": str(params.get("Body") or ""),
        "media": _media(params),
        "num_segments": _small_int(params.get("NumSegments")),
        "num_media": min(max(num_media, 0), 32767),
        "status": statuses.RECEIVED,
        "status_updated_at": timezone.now(),
    }


def _media(params: Mapping) -> list[dict]:
    """MediaUrl{N}/MediaContentType{N} pairs, in N order."""
    indexes = sorted(int(m.group(1)) for key in params if (m := _MEDIA_URL.match(str(key))))
    return [
        {"url": _text(params, f"MediaUrl{n}"), "content_type": _text(params, f"MediaContentType{n}")}
        for n in indexes
        if _text(params, f"MediaUrl{n}")
    ]


def _inbound_process(*, tenant: Tenant, message: Message, params: Mapping) -> InboundResult:
    """Keyword, marketing-offer answer or revocation review for a newly stored message."""
    extras = _tenant_keywords(tenant)
    opt_out_type = _text(params, "OptOutType").upper()
    kind = keywords.classify_keyword(
        message.body,
        opt_out_type=opt_out_type or None,
        extra_opt_out=extras[keywords.OPT_OUT],
        extra_opt_in=extras[keywords.OPT_IN],
        extra_help=extras[keywords.HELP],
    )
    portal_answers = tenant.keyword_replies == Tenant.KeywordReplies.PORTAL
    phone = message.from_number
    if kind is None:
        review = None
        if keywords.looks_like_revocation(message.body):
            review = _revocation_open(tenant=tenant, message=message)
        return InboundResult(message=message, created=True, review=review)

    source = (
        OptOutEvent.Source.OPT_OUT_TYPE
        if opt_out_type in ("STOP", "START", "HELP")  # the values classify_keyword trusts
        else OptOutEvent.Source.KEYWORD
    )
    ledger = {
        "tenant": tenant,
        "phone": phone,
        "source": source,
        "sender": message.messaging_service_sid or message.to_number,
        "keyword": keywords.normalize_keyword(message.body)[:40],
        "message": message,
        "at": message.created_at,
    }
    message.keyword = kind
    update = ["keyword"]
    reply = ""
    consent = None
    if kind == keywords.OPT_OUT:
        opt_out_record(**ledger)  # also revokes every granted consent purpose
        message.is_evidence = True
        update.append("is_evidence")
        reply = tenant.keyword_reply("opt_out")  # the one confirmation; never marketing
    elif kind == keywords.OPT_IN:
        opt_in_record(**ledger)  # lifts the opt-out, restores no consent
        message.is_evidence = True
        update.append("is_evidence")
        consent = _marketing_offer_accept(tenant=tenant, message=message, extras=extras)
        reply = tenant.keyword_reply("opt_in")
        if portal_answers and consent is None and tenant.marketing_disclosure:
            # Remember exactly which disclosure was offered: a YES next captures consent to it.
            message.offered_disclosure = disclosure_get_or_create(
                tenant=tenant, text=tenant.marketing_disclosure, purpose=Purpose.MARKETING
            )
            update.append("offered_disclosure")
            reply = f"{reply}\n{marketing_offer_line(tenant.marketing_disclosure)}"
    else:
        reply = tenant.keyword_reply("help")
    message.save(update_fields=update)
    return InboundResult(
        message=message,
        created=True,
        keyword=kind,
        reply=reply if portal_answers else "",
        consent=consent,
    )


def _tenant_keywords(tenant: Tenant) -> dict[str, list[str]]:
    extras: dict[str, list[str]] = {keywords.OPT_OUT: [], keywords.OPT_IN: [], keywords.HELP: []}
    for kind, word in TenantKeyword.objects.for_tenant(tenant).values_list("kind", "word"):
        extras.setdefault(kind, []).append(word)
    return extras


def _marketing_offer_accept(*, tenant: Tenant, message: Message, extras: dict[str, list[str]]) -> ConsentEvent | None:
    """Record marketing consent when `message` answers YES to a START confirmation's offer.

    It does only when all of these hold: the person's previous inbound message to the tenant
    is a START the portal answered with the offer (`offered_disclosure` is set only then, on
    the first delivery, in `portal` mode), it went to the same number, it is at most 24 h
    old, and this body itself is YES or one of the tenant's opt-in words (not START/UNSTOP,
    and not an OptOutType alone). "Previous inbound" makes the offer answerable once: a
    second YES follows the first YES, not the offer. The consent references the disclosure
    that was actually offered (stored at offer time), even if the tenant has edited its
    text since.
    """
    body_kind = keywords.classify_keyword(
        message.body,
        extra_opt_out=extras[keywords.OPT_OUT],
        extra_opt_in=extras[keywords.OPT_IN],
        extra_help=extras[keywords.HELP],
    )
    word = keywords.normalize_keyword(message.body)
    if body_kind != keywords.OPT_IN or word in _RESUBSCRIBE_ONLY:
        return None
    previous = (
        Message.objects.for_tenant(tenant)
        .filter(direction=Message.Direction.INBOUND, from_number=message.from_number)
        .filter(created_at__lte=message.created_at)
        .exclude(pk=message.pk)
        .select_related("offered_disclosure")
        .order_by("-created_at", "-id")
        .first()
    )
    if (
        previous is None
        or previous.offered_disclosure is None
        or previous.to_number != message.to_number
        or message.created_at - previous.created_at > MARKETING_OFFER_WINDOW
    ):
        return None
    disclosure = previous.offered_disclosure
    return consent_record(
        tenant=tenant,
        phone=message.from_number,
        purpose=Purpose.MARKETING,
        action=ConsentEvent.Action.GRANTED,
        method=ConsentEvent.Method.KEYWORD,
        source=MARKETING_CONSENT_SOURCE,
        disclosure_text=disclosure.text,
        disclosure_version=disclosure.version,
        captured_at=message.created_at,
        note=f"Replied {word} to the offer in the START confirmation of {previous.sid}; this reply is {message.sid}.",
    )


def _revocation_open(*, tenant: Tenant, message: Message) -> RevocationReview | None:
    """Queue a free-text revocation for an admin, due in 10 business days.

    The deadline counts business days of the sender's country, starting from the day the
    message arrived in the tenant's time zone (a text at 23:30 on a Wednesday in New York is
    a Wednesday request, though it is Thursday in UTC). A number that is already opted out
    has nothing left to revoke: no review, nothing to miss.
    """
    phone = message.from_number
    if is_opted_out(tenant=tenant, phone=phone):
        return None
    received_at = timezone.localtime(message.created_at, ZoneInfo(tenant.timezone))
    deadline = add_business_days(received_at, REVOCATION_BUSINESS_DAYS, country=country_for_phone(phone))
    return RevocationReview.objects.create(
        tenant=tenant,
        message=message,
        phone=phone,
        received_at=message.created_at,
        deadline_at=deadline,
        status=RevocationReview.Status.OPEN,
    )


# --- Revocation review queue ----------------------------------------------------------------------


def revocation_open_list(*, tenant: Tenant) -> QuerySet[RevocationReview]:
    """The tenant's undecided revocations, most urgent (earliest deadline) first."""
    return (
        RevocationReview.objects.for_tenant(tenant)
        .filter(status=RevocationReview.Status.OPEN)
        .select_related("message")
        .order_by("deadline_at", "id")
    )


def _review_lock(*, tenant: Tenant, review: RevocationReview) -> RevocationReview:
    """The review, row-locked, if it is this tenant's and still open; ValueError otherwise."""
    locked = RevocationReview.objects.for_tenant(tenant).select_for_update().filter(pk=review.pk).first()
    if locked is None:
        raise ValueError("No such revocation review for this tenant.")
    if locked.status != RevocationReview.Status.OPEN:
        raise ValueError(f"This revocation review was already {locked.get_status_display().lower()}.")
    return locked


def _review_copy(source: RevocationReview, target: RevocationReview) -> None:
    for name in ("status", "decided_by_id", "decided_at", "decision_note", "opt_out_event_id"):
        setattr(target, name, getattr(source, name))


@transaction.atomic
def revocation_confirm(*, tenant: Tenant, review: RevocationReview, actor, note: str = "", request=None) -> OptOutEvent:
    """An admin confirms a free-text revocation: the number is opted out (source
    `revocation_review`, every granted consent revoked) and the message becomes evidence.

    The opt-out is dated now, when the portal honours it; the review keeps when it arrived.
    Raises ValueError when the review is another tenant's or no longer open (two admins
    deciding at once: the row lock makes the second one fail).
    """
    locked = _review_lock(tenant=tenant, review=review)
    message = locked.message
    note = (note or "").strip()
    event = opt_out_record(
        tenant=tenant,
        phone=locked.phone,
        source=OptOutEvent.Source.REVOCATION_REVIEW,
        sender=message.messaging_service_sid or message.to_number,
        reason="Free-text revocation confirmed in review" + (f": {note}" if note else ""),
        actor=actor,
        message=message,
    )
    Message.objects.for_tenant(tenant).filter(pk=message.pk).update(is_evidence=True)
    locked.status = RevocationReview.Status.CONFIRMED
    locked.decided_by = actor
    locked.decided_at = event.created_at
    locked.decision_note = note
    locked.opt_out_event = event
    locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note", "opt_out_event"])
    _review_copy(locked, review)
    audit_record(
        action="revocation.confirm",
        tenant=tenant,
        actor=actor,
        target=f"revocation review #{locked.pk} ({phone_mask(locked.phone)})",
        reason=note,
        details={"review": locked.pk, "opt_out_event": event.pk, "message_sid": message.sid or ""},
        request=request,
    )
    return event


@transaction.atomic
def revocation_dismiss(*, tenant: Tenant, review: RevocationReview, actor, note: str, request=None) -> RevocationReview:
    """An admin decides a flagged message was not a revocation ("stop by at 5" was literal).

    The note is required: a dismissal keeps a number reachable, so the reason must be on
    record. Raises ValueError for an empty note, another tenant's review or a decided one.
    """
    note = (note or "").strip()
    if not note:
        raise ValueError("Say why this message is not a revocation.")
    locked = _review_lock(tenant=tenant, review=review)
    locked.status = RevocationReview.Status.DISMISSED
    locked.decided_by = actor
    locked.decided_at = timezone.now()
    locked.decision_note = note
    locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    _review_copy(locked, review)
    audit_record(
        action="revocation.dismiss",
        tenant=tenant,
        actor=actor,
        target=f"revocation review #{locked.pk} ({phone_mask(locked.phone)})",
        reason=note,
        details={"review": locked.pk, "message_sid": locked.message.sid or ""},
        request=request,
    )
    return locked


# --- Status callbacks ---------------------------------------------------------------------------


def status_callback_apply(*, tenant: Tenant, params: Mapping, message_id: str | int | None = None) -> Message | None:
    """Apply one status callback: a timeline event per distinct status, a status that only
    moves forward, the error code, and an opt-out when Twilio says 21610.

    Idempotent per (MessageSid, MessageStatus): a repeat changes nothing. The message row is
    locked (`select_for_update`) so concurrent callbacks for one message apply one at a time;
    `status_should_advance` makes their order irrelevant. `message_id` is the portal's own id
    from the StatusCallback URL (`?m=`): an outbound message of this tenant still waiting for
    its SID gets it here, even if the callback beats the send's own bookkeeping. A callback
    for a message the portal never sent creates its log row.

    Returns None, changing nothing, when the SID belongs to another tenant (module docstring).
    Raises ValueError for a status Twilio does not send (the view answers 400 before that).
    """
    sid = _text(params, "MessageSid")
    new_status = _text(params, "MessageStatus").lower()
    if new_status not in CALLBACK_STATUSES:
        raise ValueError(f"Unknown MessageStatus {new_status!r}")
    error_code = _int_or_none(params.get("ErrorCode"))
    now = timezone.now()
    with transaction.atomic():
        found = _callback_message(
            tenant=tenant, sid=sid, status=new_status, error_code=error_code, params=params, message_id=message_id
        )
        if found is None:
            return None
        message, created = found
        events = MessageEvent.objects.for_tenant(tenant).filter(message=message, status=new_status)
        if not created and events.exists():
            return message  # this (MessageSid, MessageStatus) was applied before
        try:
            with transaction.atomic():
                MessageEvent.objects.create(
                    tenant=tenant,
                    message=message,
                    status=new_status,
                    error_code=error_code,
                    occurred_at=now,
                    payload=_params_dict(params),
                )
        except IntegrityError:
            return message  # the row lock makes this unreachable on PostgreSQL; kept as a backstop
        if not created and statuses.status_should_advance(message.status, new_status):
            message.status = new_status
            message.status_updated_at = now
            update = ["status", "status_updated_at"]
            if error_code is not None:
                message.error_code = error_code
                update.append("error_code")
            message.save(update_fields=update)
        if error_code == ERROR_OPTED_OUT:
            _opt_out_from_21610(tenant=tenant, message=message, params=params)
    return message


def _callback_message(
    *, tenant: Tenant, sid: str, status: str, error_code: int | None, params: Mapping, message_id
) -> tuple[Message, bool] | None:
    """The locked message a callback is about, as (message, created), or None if foreign."""
    locked = Message.objects.for_tenant(tenant).select_for_update()
    message = locked.filter(sid=sid).first()
    if message is not None:
        return message, False
    pk = _int_or_none(message_id)
    if pk is not None:
        # Only a row still waiting for its SID: never re-point a message that already has one.
        message = locked.filter(pk=pk, direction=Message.Direction.OUTBOUND, sid__isnull=True).first()
        if message is not None:
            message.sid = sid
            update = ["sid"]
            if message.accepted_at is None:  # a callback proves Twilio accepted it
                message.accepted_at = timezone.now()
                update.append("accepted_at")
            if not message.messaging_service_sid and _text(params, "MessagingServiceSid"):
                message.messaging_service_sid = _text(params, "MessagingServiceSid")[:34]
                update.append("messaging_service_sid")
            if not message.from_number and _text(params, "From"):
                message.from_number = _phone(_text(params, "From"))
                update.append("from_number")
            try:
                with transaction.atomic():
                    message.save(update_fields=update)
                return message, False
            except IntegrityError:
                pass  # a concurrent callback already stored this SID on a new row: use that
    direction = Message.Direction.INBOUND if status in statuses.INBOUND_STATUSES else Message.Direction.OUTBOUND
    try:
        with transaction.atomic():
            message = Message.objects.create(
                tenant=tenant,
                direction=direction,
                sid=sid,
                messaging_service_sid=_text(params, "MessagingServiceSid")[:34],
                from_number=_phone(_text(params, "From")),
                to_number=_phone(_text(params, "To")),
                num_segments=_small_int(params.get("NumSegments")),
                status=status,
                error_code=error_code,
                status_updated_at=timezone.now(),
            )
        logger.info("twilio.status.unknown_message", extra={"tenant": tenant.slug, "sid": sid})
        return message, True
    except IntegrityError:
        message = locked.filter(sid=sid).first()
        if message is not None:
            return message, False  # a concurrent callback created it first
        if _sid_held_elsewhere(tenant=tenant, sid=sid):
            return None
        raise


def _opt_out_from_21610(*, tenant: Tenant, message: Message, params: Mapping) -> None:
    """Twilio refused the send because the person opted out at Twilio: our list had drifted.

    Recorded once: not when the number is already opted out here, and never twice for the
    same message (a failed and an undelivered callback may both carry 21610).
    """
    phone = _phone(_text(params, "To")) or message.to_number
    if not phone or is_opted_out(tenant=tenant, phone=phone):
        return
    if OptOutEvent.objects.for_tenant(tenant).filter(message=message, action=OptOutEvent.Action.OPT_OUT).exists():
        return
    opt_out_record(
        tenant=tenant,
        phone=phone,
        source=OptOutEvent.Source.ERROR_21610,
        sender=_text(params, "From") or _text(params, "MessagingServiceSid") or message.from_number,
        reason=ERROR_21610_REASON,
        message=message,
    )
    logger.info("messaging.opt_out.error_21610", extra={"tenant": tenant.slug, "phone": phone_mask(phone)})


# --- Helpers --------------------------------------------------------------------------------------


def _sid_held_elsewhere(*, tenant: Tenant, sid: str) -> bool:
    """Whether another tenant holds `sid`: a deliberate cross-tenant check, logged when true."""
    held = Message.all_tenants.filter(sid=sid).exclude(tenant=tenant).exists()
    if held:
        logger.warning(
            "twilio.webhook.foreign_message_sid",
            extra={"event": "twilio.webhook.foreign_message_sid", "tenant": tenant.slug, "sid": sid},
        )
    return held


def _text(params: Mapping, name: str) -> str:
    return str(params.get(name) or "").strip()


def _params_dict(params: Mapping) -> dict[str, str]:
    """A plain dict of the payload (a QueryDict's last value per name), for JSON storage."""
    return {str(k): str(params.get(k) or "") for k in params}


def _int_or_none(value) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _small_int(value) -> int | None:
    number = _int_or_none(value)
    return number if number is not None and number <= 32767 else None


def _phone(raw: str) -> str:
    """E.164 when `raw` is a valid phone number; otherwise as received (short codes,
    alphanumeric sender IDs, `whatsapp:` addresses)."""
    if not raw:
        return ""
    try:
        return phone_normalize(raw)
    except ValidationError:
        return raw[:32]
