"""Email through SendGrid: the email log, SendGrid's events about it, each tenant's suppression
list, and the platform's SendGrid configuration problems.

One platform SendGrid account sends for every tenant; every send carries the tenant and our
email id as SendGrid `custom_args`, which is how an event finds its tenant and its email.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from tenants.scoping import TenantOwned


class EmailMessage(TenantOwned):
    """One email the portal sent (or decided not to send) for a tenant."""

    class Category(models.TextChoices):
        CONSENT_RECEIPT = "consent_receipt", "Consent receipt"
        OPT_IN_CONFIRMATION = "opt_in_confirmation", "Opt-in confirmation"
        ALERT = "alert", "Alert to admins"
        NOTICE = "notice", "Notice"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Accepted by SendGrid"
        PROCESSED = "processed", "Processed"
        DEFERRED = "deferred", "Deferred"
        DELIVERED = "delivered", "Delivered"
        BOUNCED = "bounced", "Bounced"
        DROPPED = "dropped", "Dropped"
        SUPPRESSED = "suppressed", "Suppressed (not sent)"
        FAILED = "failed", "Failed"

    to_email = models.EmailField("to", max_length=254, db_index=True)
    subject = models.CharField(max_length=255)
    text = models.TextField(blank=True, default="")
    html = models.TextField(blank=True, default="")
    template_id = models.CharField(max_length=64, blank=True, default="", help_text="SendGrid dynamic template (d-…)")
    dynamic_data = models.JSONField(default=dict, blank=True)
    asm_group_id = models.PositiveIntegerField(
        "unsubscribe group", null=True, blank=True, help_text="SendGrid ASM group the email belongs to"
    )
    category = models.CharField(max_length=24, choices=Category.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True, default="", help_text="Why it was not sent, in words")
    error_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="SendGrid's HTTP status")
    send_attempts = models.PositiveSmallIntegerField(default=0)
    sg_message_id = models.CharField("SendGrid message id", max_length=64, blank=True, default="", db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "email"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at", "-id"], name="email_tenant_created")]

    def __str__(self) -> str:
        return f"{self.to_email}: {self.subject} ({self.status})"


class EmailEvent(TenantOwned):
    """One event of SendGrid's Event Webhook, stored once per `sg_event_id`."""

    sg_event_id = models.CharField("SendGrid event id", max_length=100, unique=True)
    event = models.CharField(max_length=24, db_index=True)
    email = models.CharField(max_length=254, db_index=True)
    occurred_at = models.DateTimeField()
    message = models.ForeignKey(EmailMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    sg_message_id = models.CharField(max_length=100, blank=True, default="")
    asm_group_id = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True, default="", help_text="SendGrid's reason or response, if any")
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "email event"
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} {self.email} ({self.sg_event_id})"


class EmailSuppression(TenantOwned):
    """An address the tenant must not email: for every email (`asm_group_id` null), or only
    for one SendGrid unsubscribe group. Every send checks this list first."""

    class Reason(models.TextChoices):
        BOUNCE = "bounce", "Bounced"
        DROPPED = "dropped", "Dropped by SendGrid"
        SPAMREPORT = "spamreport", "Marked as spam"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
        GROUP_UNSUBSCRIBE = "group_unsubscribe", "Unsubscribed from a group"
        MANUAL = "manual", "Added by an admin"

    email = models.CharField(max_length=254, help_text="Lower-cased")
    asm_group_id = models.PositiveIntegerField("unsubscribe group", null=True, blank=True)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.TextField(blank=True, default="")
    source_event = models.ForeignKey(EmailEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = "email suppression"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "email"], condition=Q(asm_group_id__isnull=True), name="email_suppression_global_once"
            ),
            models.UniqueConstraint(
                fields=["tenant", "email", "asm_group_id"],
                condition=Q(asm_group_id__isnull=False),
                name="email_suppression_group_once",
            ),
        ]

    def __str__(self) -> str:
        scope = f"group {self.asm_group_id}" if self.asm_group_id else "all email"
        return f"{self.email}: {self.reason} ({scope})"


class EmailProviderProblem(models.Model):
    """SendGrid refused the platform's API key (401) or its scope (403): a configuration error
    an operator must fix, shown on the support overview and every email log until a send
    succeeds again. Platform-wide, not per tenant: one SendGrid account sends for all."""

    status_code = models.PositiveSmallIntegerField()
    message = models.TextField()
    detected_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    occurrences = models.PositiveIntegerField(default=1)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "SendGrid configuration problem"
        ordering = ["-detected_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["cleared_at"], condition=Q(cleared_at__isnull=True), name="email_provider_problem_one_open"
            )
        ]

    def __str__(self) -> str:
        return f"SendGrid {self.status_code}: {self.message[:60]}"
