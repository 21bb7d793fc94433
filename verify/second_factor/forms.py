"""The code forms of the second factor."""

from __future__ import annotations

from django import forms

from tenants.phones import phone_parse


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
    )


class EnrolForm(forms.Form):
    code = forms.CharField(
        label="Code from the app",
        min_length=6,
        max_length=7,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
        help_text="After adding the account, type the 6-digit code the app shows.",
    )


class PhoneForm(forms.Form):
    number = forms.CharField(
        label="Mobile number",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel", "autofocus": True}),
        help_text="In international format, like +14155552671. Codes come by text message.",
    )

    def clean_number(self) -> str:
        return phone_parse(self.cleaned_data["number"])
