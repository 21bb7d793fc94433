"""How many segments Twilio billed for a message (the "Segments" the log and detail show).

Twilio's answer to the send carries `num_segments`, except through a Messaging Service, where
it answers 0 at create (the service picks the sender and splits the body later). Then the
count is fetched once, after the message reaches a final status: by a task enqueued from the
status callback, so the webhook itself never waits on a call to Twilio.
"""

from __future__ import annotations

import logging

from tenants.twilio import tenant_client, twilio_errors

from .. import statuses
from ..models import Message

logger = logging.getLogger("commsportal.messaging")

__all__ = ["SEGMENTS_SETTLED_STATUSES", "message_segments_fetch", "segments_fetch_needed", "segments_from_twilio"]

#: Statuses after which Twilio's count is final, so the status path may ask for it.
SEGMENTS_SETTLED_STATUSES: frozenset[str] = statuses.TWILIO_FINAL_STATUSES | {statuses.READ}


def segments_from_twilio(value) -> int | None:
    """Twilio's `num_segments` (a string) as a count, or None while unknown ("0", missing)."""
    try:
        count = int(value)
    except (TypeError, ValueError):
        return None
    return count if 0 < count <= 32767 else None


def segments_fetch_needed(message: Message) -> bool:
    """Whether the status path should ask for the count: a sent outbound message without
    one, now settled at Twilio (before that a Messaging Service may still answer 0)."""
    return (
        message.direction == Message.Direction.OUTBOUND
        and bool(message.sid)
        and message.num_segments is None
        and message.status in SEGMENTS_SETTLED_STATUSES
    )


def message_segments_fetch(*, message_id: int) -> int | None:
    """Fetch the message from Twilio once and store its segment count; returns the count.

    Does nothing when the count is already known. Raises TwilioError (the task retries the
    retryable ones).
    """
    message = Message.all_tenants.select_related("tenant").filter(pk=message_id).first()
    if message is None or not message.sid or message.num_segments is not None:
        return message.num_segments if message is not None else None
    with twilio_errors():
        fetched = tenant_client(message.tenant).messages(message.sid).fetch()
    count = segments_from_twilio(fetched.num_segments)
    if count is not None:
        Message.all_tenants.filter(pk=message_id, num_segments__isnull=True).update(num_segments=count)
    logger.info("message.segments.fetched", extra={"message_id": message_id, "segments": count})
    return count
