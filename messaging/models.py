"""The message log, its status timeline, and the opt-out and consent ledgers.

Ledgers are append-only: a row is never updated or deleted; a correction is a new event.
The current opt-out or consent state of a number is derived from its latest event.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q

from tenants.models import AppendOnlyModel
from tenants.scoping import TenantOwned

from . import statuses


class Purpose(models.TextChoices):
    MARKETING = "marketing", "Marketing"
    TRANSACTIONAL = "transactional", "Transactional"
    OTP = "otp", "One-time passcode"
    INFORMATIONAL = "informational", "Informational"


class GateDecision(models.TextChoices):
    SEND = "send", "Send now"
    DEFER = "defer", "Deferred"
    BLOCK = "block", "Blocked"


class GateReason(models.TextChoices):
    OPTED_OUT = "opted_out", "Opted out"
    NO_CONSENT = "no_consent", "No marketing consent"
    QUIET_HOURS = "quiet_hours", "Quiet hours"
    FREQUENCY_CAP = "frequency_cap", "Frequency cap"
    INVALID_NUMBER = "invalid_number", "Invalid number"
    TENANT_SUSPENDED = "tenant_suspended", "Tenant suspended"
    REVOCATION_PENDING = "revocation_pending", "Revocation pending review"
    # Not the gate's own verdict: delivery parked the message after Twilio kept failing.
    TWILIO_UNAVAILABLE = "twilio_unavailable", "Twilio unreachable: retrying later"


class Message(TenantOwned):
    """One SMS/MMS, inbound or outbound, as Twilio and the portal know it."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound"

    # Every index below is written by every insert and by every status update (a status change
    # is never a HOT update, since status is indexed), so each one costs every webhook: indexes
    # a wider one already serves are left out (the tenant, the bulk send), foreign keys that are
    # mostly empty get partial ones, and the SID's uniqueness is a constraint (a `unique=True`
    # CharField adds a second, LIKE-only index on PostgreSQL).
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    sid = models.CharField("Message SID", max_length=34, null=True, blank=True)  # noqa: DJ001 - NULL until Twilio assigns one; unique (Meta) among the rest
    messaging_service_sid = models.CharField(max_length=34, blank=True, default="")
    # Numbers and error codes are only ever looked up within a tenant: the (tenant, …) indexes
    # in Meta serve them.
    from_number = models.CharField(max_length=32)
    to_number = models.CharField(max_length=32)
    body = models.TextField(blank=True, default="")
    media = models.JSONField(default=list, blank=True, help_text="[{url, content_type}] for MMS")
    num_segments = models.PositiveSmallIntegerField(null=True, blank=True)
    num_media = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=24, choices=statuses.STATUS_CHOICES)
    error_code = models.PositiveIntegerField(null=True, blank=True)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, blank=True, default="")
    keyword = models.CharField(
        max_length=8, blank=True, default="", help_text="opt_out, opt_in or help when an inbound body was a keyword"
    )
    is_evidence = models.BooleanField(
        default=False, help_text="Changed an opt-out or consent state: its body is kept as evidence."
    )
    offered_disclosure = models.ForeignKey(
        "ConsentDisclosure",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        help_text="Marketing disclosure the portal's reply to this inbound START offered (a YES next records consent).",
    )
    body_purged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status_updated_at = models.DateTimeField(null=True, blank=True)

    # Outbound only: the compliance gate's decision and the send bookkeeping. These live in
    # their own fields, never in `status` (see DOMAIN.md).
    gate_decision = models.CharField(max_length=8, choices=GateDecision.choices, blank=True, default="")
    gate_reason = models.CharField(max_length=24, choices=GateReason.choices, blank=True, default="")
    send_after = models.DateTimeField(
        null=True, blank=True, help_text="Deferred: when the gate allows it (a periodic task picks it up)."
    )
    send_claim = models.CharField(
        max_length=36, blank=True, default="", help_text="Token of the worker holding the send lease."
    )
    send_claimed_until = models.DateTimeField(null=True, blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True, default="")
    accepted_at = models.DateTimeField(null=True, blank=True, help_text="When Twilio accepted it (SID saved).")
    bulk_send = models.ForeignKey(
        "BulkSend", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="message_tenant_recent"),
            # The log's filters, each walked newest first by keyset paging (tenants/pagination.py).
            models.Index(fields=["tenant", "status", "-created_at", "-id"], name="message_tenant_status"),
            models.Index(fields=["tenant", "direction", "-created_at", "-id"], name="message_tenant_direction"),
            models.Index(
                fields=["tenant", "error_code", "-created_at", "-id"],
                name="message_tenant_error",
                condition=Q(error_code__isnull=False),
            ),
            models.Index(fields=["tenant", "to_number", "-created_at"], name="message_tenant_to"),
            models.Index(fields=["tenant", "from_number", "-created_at"], name="message_tenant_from"),
            models.Index(
                fields=["send_after"], name="message_deferred_due", condition=Q(status="pending", gate_decision="defer")
            ),
            models.Index(
                fields=["bulk_send", "status"], name="message_bulk_status", condition=Q(bulk_send__isnull=False)
            ),
            models.Index(
                fields=["offered_disclosure"],
                name="message_offered_disclosure",
                condition=Q(offered_disclosure__isnull=False),
            ),
            models.Index(fields=["created_by"], name="message_created_by", condition=Q(created_by__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(direction__in=["inbound", "outbound"]), name="message_direction_valid"),
            models.UniqueConstraint(fields=["sid"], name="message_sid_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.sid or f'#{self.pk}'} ({self.status})"

    @property
    def counterpart(self) -> str:
        """The customer's number: who sent an inbound message, who receives an outbound one."""
        return self.from_number if self.direction == self.Direction.INBOUND else self.to_number

    @property
    def sent_at(self):
        """When it actually went: Twilio accepted an outbound one (`accepted_at`, set by the
        delivery path, so a paced bulk message shows its own send, not the launch), an inbound
        one arrived; None while an outbound one waits."""
        return self.created_at if self.direction == self.Direction.INBOUND else self.accepted_at


class MessageEvent(TenantOwned):
    """One distinct status of a message, with when it happened: the status timeline."""

    # Its index is the unique (message, status) below: a second one on message alone, or one on
    # the tenant (events are only ever read through their message), would only cost every
    # callback and every inbound text a write.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events", db_index=False)
    status = models.CharField(max_length=24, choices=statuses.STATUS_CHOICES)
    error_code = models.PositiveIntegerField(null=True, blank=True)
    occurred_at = models.DateTimeField(help_text="When the callback arrived (or the carrier's done date).")
    payload = models.JSONField(default=dict, blank=True, help_text="The callback's fields, for support.")

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            # Idempotency of status callbacks: one event per (MessageSid, MessageStatus).
            models.UniqueConstraint(fields=["message", "status"], name="message_event_unique_status"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id}: {self.status} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class TenantKeyword(TenantOwned):
    """A tenant's own keyword on top of Twilio's defaults (e.g. BAJA, ARRET)."""

    class Kind(models.TextChoices):
        OPT_OUT = "opt_out", "Opt-out"
        OPT_IN = "opt_in", "Opt-in"
        HELP = "help", "Help"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    word = models.CharField(max_length=40)

    class Meta:
        ordering = ["kind", "word"]
        constraints = [models.UniqueConstraint(fields=["tenant", "word"], name="tenant_keyword_unique_word")]

    def __str__(self) -> str:
        return f"{self.word} ({self.kind})"


class OptOutEvent(AppendOnlyModel, TenantOwned):
    """One opt-out or opt-in of a number. The number's state is its latest event."""

    class Action(models.TextChoices):
        OPT_OUT = "opt_out", "Opted out"
        OPT_IN = "opt_in", "Opted in"

    class Source(models.TextChoices):
        KEYWORD = "keyword", "Keyword"
        OPT_OUT_TYPE = "opt_out_type", "Twilio Advanced Opt-Out"
        ERROR_21610 = "error_21610", "Twilio error 21610"
        ADMIN = "admin", "Admin"
        IMPORT = "import", "Import"
        VOICE_KEYPRESS = "voice_keypress", "Voice key press"
        REVOCATION_REVIEW = "revocation_review", "Revocation review"
        DOUBLE_OPT_IN = "double_opt_in", "Double opt-in (consent form)"

    phone = models.CharField(max_length=32)
    action = models.CharField(max_length=8, choices=Action.choices)
    sender = models.CharField(
        max_length=34, blank=True, default="", help_text="Our number or Messaging Service it arrived on."
    )
    keyword = models.CharField(max_length=40, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    source = models.CharField(max_length=20, choices=Source.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "phone", "-created_at", "-id"], name="optout_tenant_phone_latest")]
        constraints = [
            # The same inbound message never records twice (webhook retries).
            models.UniqueConstraint(
                fields=["message", "action"], condition=Q(message__isnull=False), name="optout_once_per_message"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.phone} {self.action} via {self.source}"


def disclosure_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ConsentDisclosure(AppendOnlyModel, TenantOwned):
    """The exact text a person was shown when consenting, stored once, referenced by hash."""

    text = models.TextField()
    sha256 = models.CharField(max_length=64)
    version = models.CharField(max_length=40, blank=True, default="")
    purpose = models.CharField(max_length=16, choices=Purpose.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "sha256"], name="disclosure_unique_text")]

    def __str__(self) -> str:
        return f"{self.version or 'disclosure'} {self.sha256[:12]}"


class ConsentEvent(AppendOnlyModel, TenantOwned):
    """Consent granted or revoked for one (number, purpose): TCPA/GDPR evidence."""

    class Action(models.TextChoices):
        GRANTED = "granted", "Granted"
        REVOKED = "revoked", "Revoked"

    class Method(models.TextChoices):
        WEB_FORM = "web_form", "Web form"
        KEYWORD = "keyword", "Keyword"
        VERBAL = "verbal", "Verbal"
        PAPER = "paper", "Paper"
        API = "api", "API"
        DOUBLE_OPT_IN = "double_opt_in", "Double opt-in"
        IMPORT = "import", "Import"

    phone = models.CharField(max_length=32)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    action = models.CharField(max_length=8, choices=Action.choices)
    method = models.CharField(max_length=16, choices=Method.choices)
    source = models.CharField(max_length=255, blank=True, default="", help_text="Form URL, campaign, …")
    disclosure = models.ForeignKey(ConsentDisclosure, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True, default="")
    captured_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    captured_at = models.DateTimeField(help_text="When the person consented or revoked (UTC).")
    opt_out_event = models.ForeignKey(OptOutEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-captured_at", "-id"]
        indexes = [models.Index(fields=["tenant", "phone", "purpose", "-captured_at"], name="consent_tenant_phone")]

    def __str__(self) -> str:
        return f"{self.phone} {self.purpose} {self.action}"


class RevocationReview(TenantOwned):
    """Free text that reads like "stop" without being a keyword: an admin must decide within
    10 business days (FCC 24-24)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CONFIRMED = "confirmed", "Confirmed (opted out)"
        DISMISSED = "dismissed", "Dismissed"

    message = models.OneToOneField(Message, on_delete=models.PROTECT, related_name="revocation_review")
    phone = models.CharField(max_length=32)
    received_at = models.DateTimeField()
    deadline_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True, default="")
    opt_out_event = models.ForeignKey(OptOutEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["deadline_at", "id"]
        indexes = [models.Index(fields=["tenant", "status", "deadline_at"], name="revocation_open_deadline")]

    def __str__(self) -> str:
        return f"{self.phone} review due {self.deadline_at:%Y-%m-%d}"


class SendingPolicy(models.Model):
    """A tenant's sending rules: quiet hours, frequency caps, pacing. One row per tenant."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="sending_policy")
    quiet_start = models.TimeField(default="08:00", help_text="Earliest local time for marketing messages.")
    quiet_end = models.TimeField(default="21:00", help_text="Latest local time for marketing messages.")
    region_windows = models.JSONField(
        default=dict,
        blank=True,
        help_text='Stricter windows by region, e.g. {"US-FL": ["08:00", "20:00"], "US-OK": ["08:00", "20:00"]}.',
    )
    frequency_cap = models.PositiveSmallIntegerField(
        default=3,
        help_text=(
            "Most marketing messages per number per 24 hours (0 = no cap of the tenant's own; statutory caps, "
            "e.g. Florida's and Oklahoma's 3 per 24 hours, still apply)."
        ),
    )
    informational_follows_marketing_rules = models.BooleanField(
        default=False, help_text="Apply quiet hours and frequency caps to informational messages too."
    )
    messages_per_second = models.FloatField(default=1.0, help_text="Per sender; US long codes take about 1/s.")

    class Meta:
        verbose_name_plural = "sending policies"

    def __str__(self) -> str:
        return f"Sending policy of {self.tenant}"


class MessageTemplate(TenantOwned):
    """A reusable body with {{variable}} placeholders."""

    name = models.CharField(max_length=80)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="template_unique_name")]

    def __str__(self) -> str:
        return self.name


class BulkSend(TenantOwned):
    """One campaign: a CSV of recipients rendered through a template and paced out."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        CANCELLED = "cancelled", "Cancelled"
        COMPLETED = "completed", "Completed"

    name = models.CharField(max_length=120)
    template = models.ForeignKey(MessageTemplate, on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    sender = models.CharField(max_length=34, blank=True, default="", help_text="From number when no Messaging Service.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    total_recipients = models.PositiveIntegerField(default=0)
    upload = models.JSONField(
        default=dict,
        blank=True,
        help_text="The validated CSV from upload until its messages are queued (the template body as previewed, "
        "variables, rows); only the counts remain afterwards.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class MessageHourly(TenantOwned):
    """How many of a tenant's messages created in one UTC hour have a direction, status and
    error code, and for delivered ones how long they took: the dashboard reads these instead of
    scanning millions of messages and their events (`messaging.rollups`). Recounted from the
    messages, never incremented: always derivable."""

    hour = models.DateTimeField(help_text="Start of the UTC hour the messages were created in.")
    direction = models.CharField(max_length=8, choices=Message.Direction.choices)
    status = models.CharField(max_length=24, choices=statuses.STATUS_CHOICES)
    error_code = models.PositiveIntegerField(null=True, blank=True)
    messages = models.PositiveIntegerField()
    recipients = models.PositiveIntegerField(help_text="Distinct to-numbers among them.")
    delivery_histogram = models.JSONField(
        null=True,
        blank=True,
        help_text=(
            "Delivered messages only: how many took how long to deliver, as {bucket: count} in "
            "log-spaced buckets of seconds (messaging.delivery_times)."
        ),
    )

    class Meta:
        verbose_name = "hourly message count"
        ordering = ["-hour"]
        indexes = [models.Index(fields=["tenant", "hour"], name="message_hourly_tenant_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.direction} {self.status}: {self.messages}"


class MessageHourlyMark(models.Model):
    """The one row saying up to which hour `MessageHourly` is complete (every tenant's)."""

    through = models.DateTimeField(null=True, blank=True, help_text="Hours before this one are counted.")

    class Meta:
        verbose_name = "hourly message count mark"

    def __str__(self) -> str:
        return f"counted through {self.through}"
