"""The place-a-call form and the flow editor's test-call form."""

from __future__ import annotations

from django import forms

from messaging.forms.fields import PhoneField
from messaging.models import Purpose
from tenants.models import Tenant
from tenants.phones import tenant_phone_region

from .log import call_flow_versions_list, voice_numbers_list

#: A call never carries a passcode here (Verify places those): the other purposes.
CALL_PURPOSES = [(value, label) for value, label in Purpose.choices if value != Purpose.OTP]


class CallPlaceForm(forms.Form):
    to = PhoneField(label="To")
    from_number = forms.ChoiceField(
        label="From",
        help_text="One of the tenant's voice-capable numbers.",
        error_messages={"required": "Choose a number to call from: sync the tenant's voice-capable numbers first."},
    )
    purpose = forms.ChoiceField(choices=CALL_PURPOSES, initial=Purpose.TRANSACTIONAL)
    flow_version = forms.TypedChoiceField(label="Call flow", coerce=int, required=False, empty_value=None)
    message = forms.CharField(
        label="Or a spoken message",
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Read out by Twilio's text-to-speech, then the call hangs up.",
    )

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to"].region = tenant_phone_region(tenant)
        numbers = voice_numbers_list(tenant=tenant)
        self.fields["from_number"].choices = [
            (number, f"{number} · {name}" if name and name != number else number) for number, name in numbers
        ] or [("", "— no voice-capable number —")]
        self.fields["flow_version"].choices = [
            ("", "— none: speak a message —"),
            *call_flow_versions_list(tenant=tenant),
        ]

    def clean(self):
        cleaned = super().clean()
        has_flow, has_message = bool(cleaned.get("flow_version")), bool((cleaned.get("message") or "").strip())
        if has_flow == has_message:
            raise forms.ValidationError("Choose a call flow or write a spoken message (one of the two).")
        return cleaned


class TestCallForm(forms.Form):
    """The flow editor's "test call": the admin's own phone rings with a flow version."""

    to = PhoneField(label="Your phone", help_text="Your own phone: it rings and plays this flow.")
    flow_version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to"].region = tenant_phone_region(tenant)


class CallLookupForm(forms.Form):
    """The numbers page's "calls with a customer's number" box (its own field name, so it is
    told apart from messaging's history lookup on the same page)."""

    call_phone = PhoneField(label="Number", help_text="")
