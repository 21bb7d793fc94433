from django import forms
from django.contrib.auth.forms import UserCreationForm

from .models import Membership, Tenant, messaging_service_sid_validator
from .numbers import messaging_service_check


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

    def clean_messaging_service_sid(self):
        """A new SID must exist in the tenant's subaccount: otherwise every send fails (21701)."""
        sid = self.cleaned_data["messaging_service_sid"]
        stored = self.initial.get("messaging_service_sid", "")  # the value when the form was built
        if sid and sid != stored:
            messaging_service_sid_validator(sid)  # a malformed SID is not worth asking Twilio about
            messaging_service_check(tenant=self.instance, sid=sid)
        return sid


class InvitationForm(forms.Form):
    """Whom to invite: an address, never an existing account, so the answer is the same whether
    or not someone already uses it."""

    email = forms.EmailField(max_length=254, help_text="Where the invitation goes.")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.VIEWER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class InvitationSignupForm(UserCreationForm):
    """A new account for someone holding an invitation: username and password, checked by
    Django's validators (AUTH_PASSWORD_VALIDATORS); the service creates it."""
