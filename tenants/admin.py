from django import forms
from django.contrib import admin

from .models import AuditEvent, Membership, Tenant, WebhookRejection

SECRET_FIELDS = ("auth_token", "api_key_secret", "webhook_signing_key")


class TenantAdminForm(forms.ModelForm):
    """Secrets are write-only here: the form never renders them; blank keeps the stored one."""

    auth_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current token.",
    )
    api_key_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current secret.",
    )
    webhook_signing_key = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), help_text="Leave blank to keep the current key."
    )

    class Meta:
        model = Tenant
        fields = [
            "name",
            "slug",
            "account_sid",
            "auth_token",
            "api_key_sid",
            "api_key_secret",
            "webhook_signing_key",
            "status",
            "timezone",
            "messaging_service_sid",
            "verify_service_sid",
            "keyword_replies",
            "help_text",
            "stop_text",
            "sender_email",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            self.initial[name] = ""

    def clean(self):
        cleaned = super().clean()
        for name in SECRET_FIELDS:
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        if not cleaned.get("auth_token") and not self.instance.pk:
            self.add_error("auth_token", "A new tenant needs its subaccount's auth token.")
        return cleaned


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantAdminForm
    list_display = ["name", "slug", "account_sid", "status", "keyword_replies", "created_at"]
    list_filter = ["status", "keyword_replies"]
    search_fields = ["name", "slug", "account_sid"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "tenant", "action", "target", "ip_address"]
    list_filter = ["action"]
    search_fields = ["actor_label", "action", "target", "reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(admin.ModelAdmin):
    list_display = ["day", "tenant", "reason", "count", "last_seen_at"]
    list_filter = ["reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
