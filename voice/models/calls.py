"""Calls, their status timeline and their recordings."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from tenants.scoping import TenantOwned


class Call(TenantOwned):
    """One call leg, inbound or outbound, keyed by Twilio's CallSid."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound"

    class Status(models.TextChoices):
        # Not yet at Twilio: created by the portal, waiting for the gate/worker.
        PENDING = "pending", "Pending"
        BLOCKED = "blocked", "Blocked by the compliance gate"
        QUEUED = "queued", "Queued"
        INITIATED = "initiated", "Initiated"
        RINGING = "ringing", "Ringing"
        IN_PROGRESS = "in-progress", "In progress"
        COMPLETED = "completed", "Completed"
        BUSY = "busy", "Busy"
        NO_ANSWER = "no-answer", "No answer"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    sid = models.CharField("Call SID", max_length=34, null=True, blank=True, unique=True)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    from_number = models.CharField(max_length=32)
    to_number = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices)
    sequence_number = models.IntegerField(
        null=True, blank=True, help_text="Highest SequenceNumber applied from a status callback."
    )
    duration = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds (CallDuration).")
    answered_by = models.CharField(max_length=24, blank=True, default="")
    price = models.DecimalField(max_digits=10, decimal_places=5, null=True, blank=True)
    price_unit = models.CharField(max_length=3, blank=True, default="")
    flow_version = models.ForeignKey(
        "voice.CallFlowVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="calls"
    )
    menu_path = models.JSONField(default=list, blank=True, help_text="Flow steps and digits the caller took, in order.")
    # Outbound calls created from the portal: what to say/run, the gate's verdict.
    purpose = models.CharField(max_length=16, blank=True, default="")
    gate_decision = models.CharField(max_length=8, blank=True, default="")
    gate_reason = models.CharField(max_length=24, blank=True, default="")
    failure_reason = models.TextField(blank=True, default="")
    spoken_message = models.TextField(blank=True, default="", help_text="What an outbound call without a flow says.")
    callee_requested = models.BooleanField(
        default=False, help_text="A test call the called admin asked for: opt-outs apply, consent is not looked up."
    )
    dial_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker claimed the dial: a call is never placed twice."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    status_updated_at = models.DateTimeField(null=True, blank=True)
    legal_hold = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "call"
        indexes = [models.Index(fields=["tenant", "-created_at", "-id"], name="call_tenant_created")]

    def __str__(self) -> str:
        return self.sid or f"call {self.pk}"


class CallEvent(TenantOwned):
    """One status callback (or portal event) on a call's timeline; once per (call, status)."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=16, choices=Call.Status.choices)
    sequence_number = models.IntegerField(null=True, blank=True)
    answered_by = models.CharField(max_length=24, blank=True, default="")
    occurred_at = models.DateTimeField()
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        verbose_name = "call event"
        constraints = [models.UniqueConstraint(fields=["call", "status"], name="callevent_once_per_status")]

    def __str__(self) -> str:
        return f"{self.call_id} {self.status}"


class Recording(TenantOwned):
    """A recording's metadata. The audio stays at Twilio and is streamed through our own view."""

    sid = models.CharField("Recording SID", max_length=34, unique=True)
    call = models.ForeignKey(Call, null=True, blank=True, on_delete=models.CASCADE, related_name="recordings")
    call_sid = models.CharField(max_length=34)
    status = models.CharField(max_length=16, blank=True, default="")
    duration = models.PositiveIntegerField(null=True, blank=True)
    channels = models.PositiveSmallIntegerField(null=True, blank=True)
    source = models.CharField(max_length=32, blank=True, default="")
    media_url = models.URLField(
        max_length=300, blank=True, default="", help_text="Twilio's URL; never sent to browsers."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Deleted at Twilio and here (retention/erasure)."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "recording"

    def __str__(self) -> str:
        return self.sid
