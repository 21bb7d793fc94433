from django import forms

from .models import Membership, Tenant
from .selectors import user_get_by_username


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
        user = user_get_by_username(username=username)
        if user is None:
            raise forms.ValidationError(f"No portal user named “{username}”.")
        return user
