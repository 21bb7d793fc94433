"""Inbound SMS from Twilio: stored once per MessageSid, then its keyword acted on, or a
revocation review opened for a free-text "please stop" (`messaging.ledgers.revocations`).
Delivery status callbacks are `messaging.intake.status`.

Every function here and there must survive Twilio's delivery model: webhooks are retried and duplicated
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

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from twilio.twiml.messaging_response import MessagingResponse

from tenants.models import Tenant

from .. import statuses
from ..ledgers.revocations import revocation_open
from ..ledgers.services import consent_record, disclosure_get_or_create, opt_in_record, opt_out_record
from ..models import ConsentEvent, Message, MessageEvent, OptOutEvent, Purpose, RevocationReview, TenantKeyword
from . import keywords
from .params import param_int, param_phone, param_small_int, param_text, params_dict, params_storable
from .status import sid_held_elsewhere

logger = logging.getLogger("commsportal.messaging")

__all__ = [
    "MARKETING_OFFER_WINDOW",
    "InboundResult",
    "inbound_message_receive",
    "marketing_offer_line",
]


#: How long the START confirmation's marketing offer stays open for a YES.
MARKETING_OFFER_WINDOW = timedelta(hours=24)
MARKETING_CONSENT_SOURCE = "START confirmation"

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


def inbound_message_receive(*, tenant: Tenant, params: Mapping, held: dict | None = None) -> InboundResult:
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

    A plain message (no keyword, no revocation wording: most of them) on PostgreSQL is stored
    with its event in one statement (`_inbound_store_plain`). `held` is the gateway's
    per-tenant memo (`WebhookRequest.held`): the tenant's keywords are read once per hold.
    """
    params, flags = params_storable(params)
    sid = param_text(params, "MessageSid")
    fields = _inbound_fields(tenant=tenant, params=params)
    event_payload = {
        **{k: v for k, v in params_dict(params).items() if not _INBOUND_PAYLOAD_EXCLUDED.match(k)},
        **flags,
    }
    extras = held.get(_HELD_KEYWORDS) if held is not None else None
    if extras is None:
        extras = _tenant_keywords(tenant)
        if held is not None:
            held[_HELD_KEYWORDS] = extras
    plain = _inbound_kind(fields["body"], params=params, extras=extras) is None and not (
        keywords.looks_like_revocation(fields["body"])
    )
    if plain and connection.vendor == "postgresql":
        message = _inbound_store_plain(sid=sid, fields=fields, payload=event_payload)
        if message is not None:
            return InboundResult(message=message, created=True)
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
                payload=event_payload,
            )
            return _inbound_process(tenant=tenant, message=message, params=params, extras=extras)
    except IntegrityError:
        # get_or_create re-reads after a failed insert; still nothing under this tenant means
        # the SID is held by another tenant (see the module docstring).
        if not sid_held_elsewhere(tenant=tenant, sid=sid):
            raise
        return InboundResult(message=None, created=False)


_HELD_KEYWORDS = "messaging.tenant_keywords"

#: A plain inbound message and its timeline event in one statement: nothing is stored when
#: the SID exists (a duplicate, or another tenant's), and the caller takes the general path.
_PLAIN_SQL = """
WITH stored AS (
    INSERT INTO {message} ({columns}) VALUES ({values}) ON CONFLICT (sid) DO NOTHING RETURNING id
)
INSERT INTO {event} (tenant_id, message_id, status, error_code, occurred_at, payload)
SELECT %s, stored.id, %s, NULL, %s, %s::jsonb FROM stored
RETURNING message_id
"""


def _inbound_store_plain(*, sid: str, fields: dict, payload: dict) -> Message | None:
    """Insert the message and its `received` event in one autocommitted statement; the stored
    message, or None when the SID was already there."""
    message = Message(sid=sid, **fields)
    columns = [f for f in Message._meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(message, add=True), connection) for f in columns]
    quote = connection.ops.quote_name
    sql = _PLAIN_SQL.format(
        message=quote(Message._meta.db_table),
        event=quote(MessageEvent._meta.db_table),
        columns=", ".join(quote(f.column) for f in columns),
        values=", ".join(["%s"] * len(columns)),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, message.tenant_id, statuses.RECEIVED, message.created_at, json.dumps(payload)])
        row = cursor.fetchone()
    if row is None:
        return None
    message.pk = row[0]
    message._state.adding = False
    return message


def _inbound_fields(*, tenant: Tenant, params: Mapping) -> dict:
    num_media = param_int(params.get("NumMedia")) or 0
    return {
        "tenant": tenant,
        "direction": Message.Direction.INBOUND,
        "messaging_service_sid": param_text(params, "MessagingServiceSid")[:34],
        "from_number": param_phone(param_text(params, "From"), tenant=tenant),
        "to_number": param_phone(param_text(params, "To"), tenant=tenant),
        "body": str(params.get("Body") or ""),
        "media": _media(params),
        "num_segments": param_small_int(params.get("NumSegments")),
        "num_media": min(max(num_media, 0), 32767),
        "status": statuses.RECEIVED,
        "status_updated_at": timezone.now(),
    }


def _media(params: Mapping) -> list[dict]:
    """MediaUrl{N}/MediaContentType{N} pairs, in N order."""
    indexes = sorted(int(m.group(1)) for key in params if (m := _MEDIA_URL.match(str(key))))
    return [
        {"url": param_text(params, f"MediaUrl{n}"), "content_type": param_text(params, f"MediaContentType{n}")}
        for n in indexes
        if param_text(params, f"MediaUrl{n}")
    ]


def _inbound_kind(body: str, *, params: Mapping, extras: dict[str, list[str]]) -> str | None:
    """The keyword an inbound body is (opt_out, opt_in, help), or None."""
    opt_out_type = param_text(params, "OptOutType").upper()
    return keywords.classify_keyword(
        body,
        opt_out_type=opt_out_type or None,
        extra_opt_out=extras[keywords.OPT_OUT],
        extra_opt_in=extras[keywords.OPT_IN],
        extra_help=extras[keywords.HELP],
    )


def _inbound_process(
    *, tenant: Tenant, message: Message, params: Mapping, extras: dict[str, list[str]]
) -> InboundResult:
    """Keyword, marketing-offer answer or revocation review for a newly stored message."""
    opt_out_type = param_text(params, "OptOutType").upper()
    kind = _inbound_kind(message.body, params=params, extras=extras)
    portal_answers = tenant.keyword_replies == Tenant.KeywordReplies.PORTAL
    phone = message.from_number
    if kind is None:
        review = None
        if keywords.looks_like_revocation(message.body):
            review = revocation_open(tenant=tenant, message=message)
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
