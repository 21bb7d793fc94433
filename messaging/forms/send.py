"""The one-off send form."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from tenants.phones import phone_parse, tenant_phone_region

from ..models import Purpose
from .fields import PhoneField


class MessageSendForm(forms.Form):
    to = PhoneField(label="To")
    purpose = forms.ChoiceField(choices=Purpose.choices, initial=Purpose.TRANSACTIONAL)
    sender = forms.CharField(
        label="From number",
        required=False,
        max_length=40,
        help_text="One of this tenant's Twilio numbers (not needed when the tenant has a Messaging Service).",
    )
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "data-sms-counter": "send-counter"}), max_length=1600
    )

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["to"].region = tenant_phone_region(tenant)
        if tenant.messaging_service_sid:
            self.fields["sender"].help_text = f"Sent through Messaging Service {tenant.messaging_service_sid}."

    def clean_sender(self):
        sender = self.cleaned_data["sender"].strip()
        if sender:
            return phone_parse(sender, region=tenant_phone_region(self.tenant))
        if not self.tenant.messaging_service_sid:
            raise ValidationError("Choose the From number: this tenant has no Messaging Service.")
        return ""
