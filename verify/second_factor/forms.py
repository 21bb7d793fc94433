"""The code forms of the second factor."""

from __future__ import annotations

from django import forms


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
