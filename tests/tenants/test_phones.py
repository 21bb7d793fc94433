"""One phone parser (`tenants.phones.phone_parse`): international always, national only with an
explicit region (the tenant's), errors in the portal's words with an example."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from tenants.phones import DEFAULT_REGION, phone_parse, phone_parse_sender, tenant_phone_region


def error_of(raw: str, **kwargs) -> str:
    with pytest.raises(ValidationError) as caught:
        phone_parse(raw, **kwargs)
    return " ".join(caught.value.messages)


@pytest.mark.parametrize("raw", ["+14155550123", "+1 (415) 555-0123", " +1.415.555.0123 "])
def test_international_numbers_need_no_region(raw):
    assert phone_parse(raw) == "+14155550123"


def test_a_national_number_needs_an_explicit_region():
    """The old wrappers disagreed: one read it as US by default, the gate's refused it."""
    assert phone_parse("(415) 555-0123", region="US") == "+14155550123"
    assert phone_parse("01 42 68 53 00", region="fr") == "+33142685300"
    message = error_of("(415) 555-0123")
    assert "no country code" in message and "like +14155550123" in message


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("hello", None, "“hello” is not a phone number. Enter it in international format, like +14155550123."),
        ("+1415", None, "“+1415” is not a valid number. Enter it in international format, like +14155550123."),
        ("123", "US", "“123” is not a valid number for US. Enter it in international format, like +14155550123."),
        ("", None, "Enter a phone number in international format, like +14155550123."),
    ],
)
def test_errors_are_ours_and_show_an_example(raw, region, expected):
    message = error_of(raw, region=region)
    assert message == expected
    assert "did not seem" not in message and "(1)" not in message  # never phonenumbers' text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+14155550123", "+14155550123"),
        ("12345", "12345"),  # short code
        ("ACMEBANK", "ACMEBANK"),  # alphanumeric sender ID
        ("whatsapp:+14155550123", "whatsapp:+14155550123"),
        ("", ""),
    ],
)
def test_webhook_senders_are_parsed_but_never_rejected(raw, expected):
    assert phone_parse_sender(raw) == expected


def test_the_tenants_region_comes_from_its_time_zone():
    assert tenant_phone_region(SimpleNamespace(timezone="America/New_York")) == "US"
    assert tenant_phone_region(SimpleNamespace(timezone="Europe/Paris")) == "FR"
    assert tenant_phone_region(SimpleNamespace(timezone="UTC")) == DEFAULT_REGION
