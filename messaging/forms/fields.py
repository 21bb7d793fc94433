"""Form fields shared by messaging's forms and filters: a phone number (to E.164) and a number
search that also takes the last digits."""

from __future__ import annotations

import re

from django import forms

from tenants.phones import phone_normalize

_SUFFIX = re.compile(r"^\d{3,}$")


class PhoneField(forms.CharField):
    """A phone number in any common notation, cleaned to E.164 (or a clear error)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("help_text", "International format is safest, e.g. +14155550123.")
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return phone_normalize(value) if value else value


class NumberSearchField(forms.CharField):
    """Search box for numbers: a full number (normalised) or its last digits (e.g. 4567).

    Cleans to ("phone", "+14155550123"), ("suffix", "4567") or None when empty.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("label", "Number")
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        compact = re.sub(r"[\s().-]", "", value)
        if _SUFFIX.match(compact) and len(compact) <= 6:
            return ("suffix", compact)
        try:
            return ("phone", phone_normalize(value))
        except forms.ValidationError as exc:
            raise forms.ValidationError(
                "%(error)s Or search by the last digits of the number (e.g. 4567).",
                code="invalid",
                params={"error": " ".join(exc.messages)},
            ) from exc
