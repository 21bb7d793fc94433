"""The suppression list's forms: an admin adds an address by hand, or lifts an entry (with a
reason, for the audit log)."""

from __future__ import annotations

from django import forms

from .suppressions import email_normalize


class SuppressionAddForm(forms.Form):
    email = forms.CharField(label="Address", max_length=254)
    asm_group_id = forms.IntegerField(
        label="Unsubscribe group", required=False, min_value=1, max_value=2**31 - 1,
        help_text="Leave empty to stop all email to this address.",
    )  # fmt: skip
    detail = forms.CharField(label="Reason", max_length=500, help_text="Why, for the audit log.")

    def clean_email(self) -> str:
        return email_normalize(self.cleaned_data["email"])


class SuppressionRemoveForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=500, help_text="Why this address may be emailed again.")
