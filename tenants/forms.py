from django import forms
from django.contrib.auth import get_user_model

from .models import Membership, Tenant


class TenantSettingsForm(forms.ModelForm):
    """What a tenant admin may change. Credentials are platform operations, not here."""

    class Meta:
        model = Tenant
        fields = [
            "name",
            "timezone",
            "messaging_service_sid",
            "verify_service_sid",
            "keyword_replies",
            "help_text",
            "stop_text",
            "start_text",
            "marketing_disclosure",
            "sender_email",
        ]
        widgets = {
            "help_text": forms.Textarea(attrs={"rows": 3}),
            "stop_text": forms.Textarea(attrs={"rows": 3}),
            "start_text": forms.Textarea(attrs={"rows": 3}),
            "marketing_disclosure": forms.Textarea(attrs={"rows": 3}),
        }


class MembershipForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="An existing portal user.")
    role = forms.ChoiceField(choices=Membership.Role.choices)

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        try:
            return get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist as exc:
            raise forms.ValidationError(f"No portal user named “{username}”.") from exc
