"""One number's history for a tenant: its opt-out and consent ledgers, reviews and messages on one
timeline, with what was sent while it was opted out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tenants import twilio_codes
from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.phones import phone_mask
from tenants.services import audit_record

from .. import statuses
from ..intake.keywords import DEFAULT_OPT_IN_KEYWORDS, DEFAULT_OPT_OUT_KEYWORDS, normalize_keyword
from ..models import ConsentEvent, Message, OptOutEvent, RevocationReview
from .reachability import number_is_opted_out

# --- Per-number history (the consent proof) ---------------------------------------------------

#: Outbound statuses that mean nothing left the portal: never a "sent after opt-out".
_NOT_SENT = (statuses.BLOCKED, statuses.CANCELED)


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a number's history, in the same shape for the page, CSV and JSON."""

    at: datetime
    category: str  # consent | opt_out | keyword | review | outbound
    action: str
    purpose: str = ""
    source: str = ""
    sender: str = ""
    text: str = ""  # reason, note, body
    actor: str = ""
    disclosure_version: str = ""
    disclosure_sha256: str = ""
    ip_address: str = ""
    user_agent: str = ""
    reference: str = ""
    alert: bool = False
    obj: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SentWhileOptedOut:
    message: Message
    reason: str  # what was in force, e.g. "opted out on 2025-04-12 (keyword STOP)"


@dataclass
class NumberHistory:
    phone: str
    opt_out_events: list[OptOutEvent]
    consent_events: list[ConsentEvent]
    keyword_messages: list[Message]
    reviews: list[RevocationReview]
    sent_while_opted_out: list[SentWhileOptedOut]
    failed_21610: list[Message]
    #: Whether the tenant may not message the number now (opted out or erased), asked of
    #: `reachability` rather than read off the ledger above, which forgets erased numbers.
    is_opted_out: bool
    twilio_block: dict | None  # {"sender", "service", "message", "why"} when Twilio likely still blocks

    @property
    def current_opt_out(self) -> OptOutEvent | None:
        return self.opt_out_events[-1] if self.opt_out_events else None

    @property
    def consent_by_purpose(self) -> dict[str, ConsentEvent]:
        latest: dict[str, ConsentEvent] = {}
        for event in self.consent_events:  # oldest first: the last one wins
            latest[event.purpose] = event
        return latest

    @property
    def open_reviews(self) -> list[RevocationReview]:
        return [r for r in self.reviews if r.status == RevocationReview.Status.OPEN]

    def timeline(self) -> list[HistoryEntry]:
        """Everything that happened to the number, oldest first."""
        entries = [
            *self._consent_entries(),
            *self._opt_out_entries(),
            *self._keyword_entries(),
            *self._review_entries(),
            *self._outbound_entries(),
        ]
        # Same instant: the message that caused a change first, then the change, then its effects.
        order = {"keyword": 0, "review": 1, "opt_out": 2, "consent": 3, "outbound": 4}
        entries.sort(key=lambda entry: (entry.at, order[entry.category]))
        return entries

    def _consent_entries(self) -> Iterator[HistoryEntry]:
        """Consent captured or revoked, with the disclosure the person saw."""
        for e in self.consent_events:
            disclosure = e.disclosure
            yield HistoryEntry(
                at=e.captured_at,
                category="consent",
                action=f"consent {e.action}",
                purpose=e.purpose,
                source=f"{e.get_method_display()}{f' · {e.source}' if e.source else ''}",
                text=e.note,
                actor=e.captured_by.get_username() if e.captured_by else "",
                disclosure_version=disclosure.version if disclosure else "",
                disclosure_sha256=disclosure.sha256 if disclosure else "",
                ip_address=e.ip_address or "",
                user_agent=e.user_agent,
                reference=f"consent #{e.pk}",
                obj=e,
            )

    def _opt_out_entries(self) -> Iterator[HistoryEntry]:
        """The opt-out ledger."""
        for e in self.opt_out_events:
            yield HistoryEntry(
                at=e.created_at,
                category="opt_out",
                action=e.action.replace("_", "-"),
                source=e.get_source_display(),
                sender=e.sender,
                text=" · ".join(x for x in (e.keyword, e.reason) if x),
                actor=e.actor.get_username() if e.actor else "",
                reference=f"opt-out #{e.pk}",
                obj=e,
            )

    def _keyword_entries(self) -> Iterator[HistoryEntry]:
        """Inbound keyword messages (STOP, START, HELP and the tenant's own)."""
        for m in self.keyword_messages:
            yield HistoryEntry(
                at=m.created_at,
                category="keyword",
                action=f"inbound {m.keyword.replace('_', '-')} keyword",
                sender=m.messaging_service_sid or m.to_number,
                text="" if m.body_purged_at else m.body,
                reference=m.sid or f"message #{m.pk}",
                obj=m,
            )

    def _review_entries(self) -> Iterator[HistoryEntry]:
        """Revocation reviews opened, and decided when they were."""
        for r in self.reviews:
            yield HistoryEntry(
                at=r.received_at,
                category="review",
                action="revocation review opened",
                text="" if r.message.body_purged_at else r.message.body,
                reference=f"review #{r.pk}",
                obj=r,
            )
            if r.decided_at:
                yield HistoryEntry(
                    at=r.decided_at,
                    category="review",
                    action=f"revocation review {r.status}",
                    text=r.decision_note,
                    actor=r.decided_by.get_username() if r.decided_by else "",
                    reference=f"review #{r.pk}",
                    obj=r,
                )

    def _outbound_entries(self) -> Iterator[HistoryEntry]:
        """Messages sent while opted out, then other sends Twilio refused with 21610."""
        for item in self.sent_while_opted_out:
            m = item.message
            yield HistoryEntry(
                at=m.created_at,
                category="outbound",
                action=f"OUTBOUND WHILE OPTED OUT ({m.status})",
                purpose=m.purpose,
                sender=m.messaging_service_sid or m.from_number,
                text=item.reason,
                reference=m.sid or f"message #{m.pk}",
                alert=True,
                obj=m,
            )
        flagged = {item.message.pk for item in self.sent_while_opted_out}
        for m in self.failed_21610:
            if m.pk in flagged:
                continue
            yield HistoryEntry(
                at=m.created_at,
                category="outbound",
                action=f"outbound {m.status} (21610: blocked by Twilio)",
                purpose=m.purpose,
                sender=m.messaging_service_sid or m.from_number,
                reference=m.sid or f"message #{m.pk}",
                obj=m,
            )


def number_history(*, tenant: Tenant, phone: str) -> NumberHistory:
    """Every consent and opt-out event of `phone`, its keyword messages and revocation reviews,
    and the outbound messages that should never have been sent (after an opt-out, a confirmed
    revocation or a revoked consent of the message's purpose)."""
    opt_outs = list(
        OptOutEvent.objects.for_tenant(tenant).filter(phone=phone).select_related("actor").order_by("created_at", "id")
    )
    consents = list(
        ConsentEvent.objects.for_tenant(tenant)
        .filter(phone=phone)
        .select_related("disclosure", "captured_by")
        .order_by("captured_at", "id")
    )
    keyword_messages = list(
        Message.objects.for_tenant(tenant)
        .filter(direction=Message.Direction.INBOUND, from_number=phone)
        .exclude(keyword="")
        .order_by("created_at", "id")
    )
    reviews = list(
        RevocationReview.objects.for_tenant(tenant)
        .filter(phone=phone)
        .select_related("message", "decided_by")
        .order_by("received_at", "id")
    )
    windows = _opt_out_windows(opt_outs, reviews) + _consent_windows(consents)
    sent_after: list[SentWhileOptedOut] = []
    if windows:
        earliest = min(start for start, _, _, _ in windows)
        outbound = (
            Message.objects.for_tenant(tenant)
            .filter(direction=Message.Direction.OUTBOUND, to_number=phone, created_at__gte=earliest)
            .exclude(status__in=_NOT_SENT)
            .order_by("created_at", "id")
        )
        for message in outbound:
            for start, end, purpose, why in windows:
                if purpose and message.purpose != purpose:
                    continue
                if start <= message.created_at and (end is None or message.created_at < end):
                    sent_after.append(SentWhileOptedOut(message=message, reason=why))
                    break
    failed_21610 = list(
        Message.objects.for_tenant(tenant)
        .filter(direction=Message.Direction.OUTBOUND, to_number=phone, error_code=twilio_codes.OPTED_OUT)
        .order_by("created_at", "id")
    )
    history = NumberHistory(
        phone=phone,
        opt_out_events=opt_outs,
        consent_events=consents,
        keyword_messages=keyword_messages,
        reviews=reviews,
        sent_while_opted_out=sent_after,
        failed_21610=failed_21610,
        is_opted_out=number_is_opted_out(tenant=tenant, phone=phone),
        twilio_block=None,
    )
    history.twilio_block = _twilio_block(history)
    return history


def _opt_out_windows(opt_outs: list[OptOutEvent], reviews: list[RevocationReview]) -> list[tuple]:
    """(start, end or None, purpose "", why) for each stretch the number was opted out.

    A confirmed free-text revocation counts from when the person sent it, not from when an
    admin confirmed it: the person revoked at that moment.
    """
    changes: list[tuple[datetime, int, str, str]] = [(e.created_at, e.pk, e.action, _opt_out_why(e)) for e in opt_outs]
    for r in reviews:
        if r.status == RevocationReview.Status.CONFIRMED:
            when = f"{r.received_at:%Y-%m-%d %H:%M} UTC"
            changes.append((r.received_at, 0, OptOutEvent.Action.OPT_OUT, f"revoked consent in free text on {when}"))
    changes.sort(key=lambda c: (c[0], c[1]))
    windows: list[tuple] = []
    start: tuple[datetime, str] | None = None
    for at, _, action, why in changes:
        if action == OptOutEvent.Action.OPT_OUT and start is None:
            start = (at, why)
        elif action == OptOutEvent.Action.OPT_IN and start is not None:
            windows.append((start[0], at, "", start[1]))
            start = None
    if start is not None:
        windows.append((start[0], None, "", start[1]))
    return windows


def _opt_out_why(event: OptOutEvent) -> str:
    how = event.get_source_display() + (f" {event.keyword}" if event.keyword else "")
    return f"opted out on {event.created_at:%Y-%m-%d %H:%M} UTC ({how})"


def _consent_windows(consents: list[ConsentEvent]) -> list[tuple]:
    """(start, end or None, purpose, why) for each stretch a purpose's consent was revoked."""
    windows: list[tuple] = []
    revoked_since: dict[str, ConsentEvent] = {}
    for e in consents:  # oldest first
        if e.action == ConsentEvent.Action.REVOKED:
            revoked_since.setdefault(e.purpose, e)
        elif e.purpose in revoked_since:
            start = revoked_since.pop(e.purpose)
            windows.append((start.captured_at, e.captured_at, e.purpose, _consent_why(start)))
    for purpose, start in revoked_since.items():
        windows.append((start.captured_at, None, purpose, _consent_why(start)))
    return windows


def _consent_why(event: ConsentEvent) -> str:
    return f"{event.get_purpose_display().lower()} consent revoked on {event.captured_at:%Y-%m-%d %H:%M} UTC"


def _twilio_block(history: NumberHistory) -> dict | None:
    """When the portal says "opted in" but Twilio will still refuse sends (error 21610).

    Twilio keeps its own opt-out list per sender (per Messaging Service when there is one) and
    only a START/UNSTOP from the person lifts it; an admin's opt-in, an import or a tenant's own
    keyword does not. Two signals: a send that failed with 21610 after the latest opt-in (sure),
    or an opt-in that Twilio never saw lifting an opt-out that Twilio did see (likely).
    """
    if history.is_opted_out:
        return None
    current = history.current_opt_out
    since = current.created_at if current else None
    for message in reversed(history.failed_21610):
        if since is None or message.created_at > since:
            return {
                "certain": True,
                "sender": message.from_number,
                "service": message.messaging_service_sid,
                "message": message,
            }
    if current is None or _twilio_heard(current):
        return None  # never opted out, or opted back in with a keyword Twilio itself acted on
    previous = next((e for e in reversed(history.opt_out_events[:-1]) if e.action == OptOutEvent.Action.OPT_OUT), None)
    if previous is None or not _twilio_heard(previous):
        return None  # Twilio never blocked it: a tenant keyword, an admin or an import opted it out
    sender = previous.sender
    is_service = sender.startswith("MG")
    return {
        "certain": False,
        "sender": "" if is_service else sender,
        "service": sender if is_service else "",
        "message": None,
    }


def _twilio_heard(event: OptOutEvent) -> bool:
    """Whether Twilio's own opt-out list saw this change (so its block follows our ledger)."""
    if event.source in (OptOutEvent.Source.OPT_OUT_TYPE, OptOutEvent.Source.ERROR_21610):
        return True
    if event.source != OptOutEvent.Source.KEYWORD:
        return False
    defaults = DEFAULT_OPT_OUT_KEYWORDS if event.action == OptOutEvent.Action.OPT_OUT else DEFAULT_OPT_IN_KEYWORDS
    return normalize_keyword(event.keyword) in defaults


# --- Export -------------------------------------------------------------------------------------

#: The export's columns, in order: what a reader of the CSV relies on.
HISTORY_COLUMNS = (
    "occurred_at_utc",
    "category",
    "action",
    "phone",
    "purpose",
    "source",
    "sender",
    "text",
    "actor",
    "disclosure_version",
    "disclosure_sha256",
    "ip_address",
    "user_agent",
    "reference",
    "alert",
)


def number_history_export(
    *,
    tenant: Tenant,
    history: NumberHistory,
    export: str,
    show: Callable[[str], str],
    masked: bool,
    audit: AuditContext,
) -> list[dict]:
    """The history as export rows, each number as `show` gives it to this viewer, audited.

    An export is personal data leaving the portal, whoever takes it (a member, or support
    staff reading another tenant's data), so each one is on the record, the number masked
    like every audit target.
    """
    rows = [
        {
            "occurred_at_utc": e.at.astimezone(UTC).isoformat(),
            "category": e.category,
            "action": e.action,
            "phone": show(history.phone),
            "purpose": e.purpose,
            "source": e.source,
            "sender": show(e.sender) if e.sender.startswith("+") else e.sender,
            "text": e.text,
            "actor": e.actor,
            "disclosure_version": e.disclosure_version,
            "disclosure_sha256": e.disclosure_sha256,
            "ip_address": e.ip_address,
            "user_agent": e.user_agent,
            "reference": e.reference,
            "alert": "yes" if e.alert else "",
        }
        for e in history.timeline()
    ]
    audit_record(
        action="export.number_history",
        tenant=tenant,
        audit=audit,
        target=phone_mask(history.phone),
        details={"format": export, "rows": len(rows), "masked": masked},
    )
    return rows
