"""The operator's read-only view of email: the log, SendGrid's events, suppression lists and
the platform's SendGrid configuration problems (tenant admins manage suppressions in the
portal, audited)."""

from django.contrib import admin

from tenants.admin import ReadOnlyAdmin, TenantOwnedAdmin, status_filter

from .models import EmailEvent, EmailMessage, EmailProviderProblem, EmailSuppression


@admin.register(EmailMessage)
class EmailMessageAdmin(TenantOwnedAdmin):
    list_display = ["created_at", "tenant", "to_email", "category", "status", "error_status", "send_attempts"]
    list_filter = ["tenant", "status", "category"]
    search_fields = ["to_email", "sg_message_id", "tenant__slug"]
    date_hierarchy = "created_at"


@admin.register(EmailEvent)
class EmailEventAdmin(TenantOwnedAdmin):
    list_display = ["occurred_at", "tenant", "event", "email", "sg_event_id"]
    list_filter = ["tenant", "event"]
    search_fields = ["email", "sg_event_id", "sg_message_id"]


@admin.register(EmailSuppression)
class EmailSuppressionAdmin(TenantOwnedAdmin):
    list_display = ["created_at", "tenant", "email", "reason", "asm_group_id"]
    list_filter = ["tenant", "reason"]
    search_fields = ["email", "tenant__slug"]


@admin.register(EmailProviderProblem)
class EmailProviderProblemAdmin(ReadOnlyAdmin):
    list_display = ["detected_at", "status_code", "message", "occurrences", "last_seen_at", "cleared_at"]
    list_filter = [status_filter("cleared_at", ("open", "Open"), ("cleared", "Cleared"))]
