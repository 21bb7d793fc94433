"""Forms of the platform operator pages (superusers): lifecycle, retention, erasure."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from .models import TIMEZONE_CHOICES, Tenant
from .phones import DEFAULT_REGION, phone_parse
from .selectors import tenant_slug_taken


class TenantCreateForm(forms.Form):
    name = forms.CharField(
        max_length=64, help_text="Also the subaccount's FriendlyName at Twilio (at most 64 characters)."
    )
    slug = forms.SlugField(max_length=50, help_text="The tenant's URL: /t/<slug>/. Cannot be changed later.")
    timezone = forms.ChoiceField(choices=TIMEZONE_CHOICES, initial="America/New_York")

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if tenant_slug_taken(slug=slug):
            raise ValidationError("A tenant with this slug already exists.")
        return slug


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500, help_text="Recorded in the audit log.")


class CloseForm(forms.Form):
    confirm_slug = forms.CharField(
        label="Type the tenant's slug to confirm", max_length=50, help_text="Closing is irreversible."
    )
    reason = forms.CharField(required=False, max_length=500)


class RetentionForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["retention_days", "legal_hold", "redact_at_twilio"]


class ErasureForm(forms.Form):
    phone = forms.CharField(
        label="Number to erase", max_length=40, help_text="International format, e.g. +14155550123."
    )
    phone_again = forms.CharField(label="The same number again", max_length=40)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=1000,
        help_text="Why, and the request's reference: kept in the audit log (never the number).",
    )
    at_twilio = forms.BooleanField(
        label="Also redact the message bodies in Twilio's log", required=False, initial=False
    )

    def clean(self):
        cleaned = super().clean()
        numbers = []
        for name in ("phone", "phone_again"):
            raw = cleaned.get(name)
            if raw is None:
                return cleaned
            try:
                numbers.append(phone_parse(raw, region=DEFAULT_REGION))
            except ValidationError as exc:
                self.add_error(name, exc)
                return cleaned
        if numbers[0] != numbers[1]:
            self.add_error("phone_again", "The two numbers differ.")
        else:
            cleaned["phone"] = numbers[0]
        return cleaned
