"""Messaging's phone inputs all go through `tenants.phones.phone_parse`: the form field, the gate's
fast path and the webhook fields agree with it."""

from __future__ import annotations

import pytest

from messaging.compliance.numbers import number_parse
from messaging.forms.fields import PhoneField
from tenants.phones import phone_parse


def test_phone_field_error_says_what_is_wrong_with_an_example():
    field = PhoneField()
    with pytest.raises(Exception) as caught:
        field.clean("415 555 0123")
    assert caught.value.messages == [
        "“415 555 0123” has no country code. Enter it in international format, like +14155550123."
    ]
    field.region = "US"  # what a form sets from its tenant
    assert field.clean("415 555 0123") == "+14155550123"


@pytest.mark.parametrize(
    "raw", ["+1 (212) 555-0123", "+12125550123", "+33142685300", "+262262123456", "+1415", "2125550123", "x"]
)
def test_the_gates_fast_parse_agrees_with_the_parser(raw):
    try:
        expected = phone_parse(raw)
    except Exception:
        expected = None
    parsed = number_parse(raw)
    assert (parsed.e164 if parsed else None) == expected
