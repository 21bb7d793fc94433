"""Form fields shared by messaging's forms and filters: a phone number (to E.164) and a number
search that also takes the last digits."""

from __future__ import annotations

import re

from django import forms

from tenants.phones import EXAMPLE, phone_parse

_SUFFIX = re.compile(r"^\d{3,}$")


class PhoneField(forms.CharField):
    """A phone number in any common notation, cleaned to E.164 by `tenants.phones.phone_parse`;
    its error says what is wrong and shows an example.

    National numbers need `region`: a form that knows its tenant sets it to the tenant's
    (`tenant_phone_region`); without it only international numbers are accepted.
    """

    def __init__(self, *, region: str | None = None, **kwargs):
        self.region = region
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("help_text", f"International format is safest, e.g. {EXAMPLE}.")
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return phone_parse(value, region=self.region) if value else value


class NumberSearchField(forms.CharField):
    """Search box for numbers: a full number (normalised) or its last digits (e.g. 4567).

    Cleans to ("phone", "+14155550123"), ("suffix", "4567") or None when empty.
    """

    def __init__(self, *, region: str | None = None, **kwargs):
        self.region = region
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
            return ("phone", phone_parse(value, region=self.region))
        except forms.ValidationError as exc:
            raise forms.ValidationError(
                "%(error)s Or search by the last digits of the number (e.g. 4567).",
                code="invalid",
                params={"error": " ".join(exc.messages)},
            ) from exc
