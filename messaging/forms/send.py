"""The one-off send form."""

from __future__ import annotations

from django import forms

from tenants.models import Tenant
from tenants.phones import tenant_phone_region

from ..log import sender_numbers_list
from ..models import Purpose
from .fields import PhoneField


def sender_choices(tenant: Tenant) -> list[tuple[str, str]]:
    """Who a message may be from: the tenant's Messaging Service first, then its SMS-capable
    numbers still held (the synced inventory). A number outside these would fail at Twilio."""
    choices = []
    if tenant.messaging_service_sid:
        choices.append((tenant.messaging_service_sid, f"Messaging Service {tenant.messaging_service_sid}"))
    numbers = sender_numbers_list(tenant=tenant)
    choices += [(number, f"{number} · {name}" if name and name != number else number) for number, name in numbers]
    return choices


class MessageSendForm(forms.Form):
    to = PhoneField(label="To")
    purpose = forms.ChoiceField(choices=Purpose.choices, initial=Purpose.TRANSACTIONAL)
    sender = forms.ChoiceField(
        label="From",
        help_text="The tenant's Messaging Service or one of its SMS-capable numbers.",
        error_messages={
            "required": "Choose who the message is from. This tenant has no Messaging Service and no "
            "SMS-capable numbers yet: sync its numbers or set a Messaging Service in Settings.",
            "invalid_choice": "%(value)s is not this tenant's Messaging Service or one of its SMS-capable numbers.",
        },
    )
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "data-sms-counter": "send-counter"}), max_length=1600
    )

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["to"].region = tenant_phone_region(tenant)
        choices = sender_choices(tenant)
        self.fields["sender"].choices = choices or [("", "— no sender available —")]
        if choices:
            self.fields["sender"].initial = choices[0][0]

    def clean_sender(self):
        """The Messaging Service is sent as no From number (`message_send` then uses it)."""
        sender = self.cleaned_data["sender"]
        return "" if sender == self.tenant.messaging_service_sid else sender
