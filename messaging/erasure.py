"""Messaging's part of a GDPR erasure, registered in `tenants.registry.number_erasers`.

tenants hashes the number into its suppression list, scrubs its audit log and audits the
erasure (`tenants.retention.number_erase`); this module redacts the number in messaging's
tables: its messages (body, media, from/to → marker), their status timeline payloads, its
opt-out and consent events (number → marker, IP and user agent cleared), revocation reviews,
the number in free text of the ledgers' notes, and draft bulk sends' recipient lists. Message
bodies are then redacted in Twilio's log too when the erasure asks.

Append-only ledgers: `OptOutEvent`, `ConsentEvent` and `RevocationReview` rows are rewritten with
queryset `.update()`, bypassing their append-only `save()`: the one sanctioned exception, GDPR
Art. 17 erasure of the person's identifiers. Action, time, source and actor of every event stay.
The number is opted out first (an erasure request is also a request not to be contacted), and
that opt-out, pseudonymised, is what keeps it suppressed alongside tenants' keyed hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.db.models import Q, Value
from django.db.models.functions import Coalesce

from messaging.ledgers.services import opt_out_record
from tenants.registry import NumberEraser, NumberErasure
from tenants.retention import ERASED_TEXT, json_column_scrub, text_columns_scrub, text_scrub

from .models import BulkSend, ConsentEvent, Message, MessageEvent, OptOutEvent, RevocationReview
from .retention import message_bodies_twilio_redact

ERASER_KEY = "messaging"
# Payload fields locating the person (Twilio's geographic lookup of From/To): dropped on erasure.
_GEO_FIELD = re.compile(r"^(From|To)(City|State|Zip|Country)$")


def payload_geo_strip(payload):
    """A webhook payload without Twilio's geographic lookup of From/To (voice's eraser too)."""
    if not isinstance(payload, dict):
        return payload
    return {k: v for k, v in payload.items() if not _GEO_FIELD.match(k)}


def _opt_out_ensure(erasure: NumberErasure) -> bool:
    """Opt the number out unless it already is; whether an opt-out was recorded."""
    tenant, phone = erasure.tenant, erasure.phone
    latest = OptOutEvent.objects.for_tenant(tenant).filter(phone=phone).order_by("-created_at", "-id").first()
    if latest is not None and latest.action == OptOutEvent.Action.OPT_OUT:
        return False
    opt_out_record(
        tenant=tenant,
        phone=phone,
        source=OptOutEvent.Source.ADMIN,
        reason="GDPR erasure",
        actor=erasure.actor,
        at=erasure.now,
    )
    return True


def _messages_erase(erasure: NumberErasure) -> None:
    """The number's messages and their status timelines; their SIDs for Twilio's log."""
    tenant, phone, marker, pattern = erasure.tenant, erasure.phone, erasure.marker, erasure.pattern
    # Channel addresses (whatsapp:+1…) name the number too.
    is_from = Q(from_number=phone) | Q(from_number__endswith=":" + phone)
    is_to = Q(to_number=phone) | Q(to_number__endswith=":" + phone)
    messages = Message.objects.for_tenant(tenant).filter(is_from | is_to)
    message_ids = list(messages.values_list("id", flat=True))
    erasure.remote_ids[ERASER_KEY] = list(messages.exclude(sid=None).values_list("sid", flat=True))
    erased = Message.objects.for_tenant(tenant).filter(id__in=message_ids)
    erasure.counts["messages"] = erased.update(
        body="", media=[], body_purged_at=Coalesce("body_purged_at", Value(erasure.now))
    )
    erased.filter(is_from).update(from_number=marker)
    erased.filter(is_to).update(to_number=marker)
    text_columns_scrub(erased, ["failure_reason"], pattern, marker, erasure.hint)

    changed = 0
    events = MessageEvent.objects.for_tenant(tenant).filter(message_id__in=message_ids)
    for row in events.values("pk", "payload"):
        new = text_scrub(payload_geo_strip(row["payload"]), pattern, marker)
        if new != row["payload"]:
            events.filter(pk=row["pk"]).update(payload=new)
            changed += 1
    erasure.counts["message_events"] = changed


def _ledgers_erase(erasure: NumberErasure) -> None:
    """The opt-out and consent ledgers and revocation reviews (the GDPR exception, above)."""
    tenant, phone, marker, pattern, hint = erasure.tenant, erasure.phone, erasure.marker, erasure.pattern, erasure.hint
    erasure.counts["opt_out_events"] = OptOutEvent.objects.for_tenant(tenant).filter(phone=phone).update(phone=marker)
    text_columns_scrub(OptOutEvent.objects.for_tenant(tenant), ["reason", "keyword"], pattern, marker, hint)
    erasure.counts["consent_events"] = (
        ConsentEvent.objects.for_tenant(tenant)
        .filter(phone=phone)
        .update(phone=marker, ip_address=None, user_agent=ERASED_TEXT)
    )
    text_columns_scrub(ConsentEvent.objects.for_tenant(tenant), ["source", "note"], pattern, marker, hint)
    erasure.counts["revocation_reviews"] = (
        RevocationReview.objects.for_tenant(tenant).filter(phone=phone).update(phone=marker)
    )
    text_columns_scrub(RevocationReview.objects.for_tenant(tenant), ["decision_note"], pattern, marker, hint)


def _bulk_drafts_erase(erasure: NumberErasure) -> None:
    phone = erasure.phone

    def recipient_drop(upload):
        if not isinstance(upload, dict) or not isinstance(upload.get("recipients"), list):
            return upload
        kept = [r for r in upload["recipients"] if not (isinstance(r, list) and r and r[0] == phone)]
        return {**upload, "recipients": kept}

    erasure.counts["bulk_drafts"] = len(
        json_column_scrub(
            BulkSend.objects.for_tenant(erasure.tenant),
            "upload",
            erasure.pattern,
            erasure.marker,
            erasure.hint,
            transform=recipient_drop,
        )
    )


def number_erase_messaging(erasure: NumberErasure) -> None:
    """Everything messaging stores about the number (module docstring); inside tenants' transaction."""
    erasure.counts["opt_out_recorded"] = _opt_out_ensure(erasure)
    _messages_erase(erasure)
    _ledgers_erase(erasure)
    _bulk_drafts_erase(erasure)


def erasure_describe(counts: Mapping[str, int | bool]) -> str:
    return (
        f"{counts.get('messages', 0)} message(s), {counts.get('opt_out_events', 0)} opt-out and "
        f"{counts.get('consent_events', 0)} consent event(s)"
    )


MESSAGING_ERASER = NumberEraser(
    key=ERASER_KEY,
    erase=number_erase_messaging,
    remote_redact=message_bodies_twilio_redact,
    describe=erasure_describe,
)
