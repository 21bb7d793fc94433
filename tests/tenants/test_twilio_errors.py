"""Twilio error explanations and the retry policy derived from them."""

from __future__ import annotations

import re

import pytest

from tenants import twilio_codes
from tenants.twilio_errors import (
    ERRORS,
    RETRYABLE_CODES,
    TERMINAL_CODES,
    explain,
    is_retryable,
)

# Every code DOMAIN.md mentions must be explained.
DOMAIN_CODES = [
    20003,
    20404,
    20429,
    21211,
    21408,
    21478,
    21603,
    21604,
    21610,
    21612,
    21614,
    21703,
    30003,
    30004,
    30005,
    30006,
    30007,
    30008,
    30034,
    30036,
    30047,
    60200,
    60202,
    60203,
    60212,
    63016,
    63038,
    11200,
    11205,
]
MUST_NOT_RETRY = [
    21211,
    21408,
    21610,
    21612,
    21614,
    21603,
    21604,
    21703,
    30003,
    30005,
    30006,
    30004,
    30007,
    20003,
    21478,
]


# --- ERRORS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", DOMAIN_CODES)
def test_every_domain_code_is_explained(code):
    assert code in ERRORS
    assert explain(code) == ERRORS[code]


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_explanations_are_support_friendly(code):
    text = ERRORS[code]
    assert isinstance(code, int) and 10000 <= code <= 99999
    assert 60 <= len(text) <= 600, "one or a few sentences: what happened and what to do"
    assert text[0].isupper() and text.rstrip().endswith(".")
    assert "  " not in text
    assert str(code) not in text, "the code is shown beside the text already"


def test_explanations_say_what_to_do():
    advice = re.compile(
        r"\b(retry|retries|resend|check|contact|use|add|ask|enable|register|wait|start|"
        r"send|verify|correct|fix|shorten|re-enter|review|pick|offer|mark|slow)",
        re.IGNORECASE,
    )
    missing = [code for code, text in ERRORS.items() if not advice.search(text)]
    assert missing == []


def test_63016_is_the_whatsapp_window_not_a_concurrency_limit():
    text = explain(63016).lower()
    assert "24-hour" in text and "whatsapp" in text and "template" in text
    assert "concurren" not in text


def test_21610_is_explained_as_an_opt_out():
    text = explain(21610)
    assert "opted out" in text and "START" in text and "Do not retry" in text


def test_21478_says_twilio_suspended_the_subaccount():
    text = explain(21478).lower()
    assert "twilio" in text and "suspended" in text and "support" in text


def test_30034_mentions_10dlc_registration():
    assert "10DLC" in explain(30034)


def test_webhook_errors_point_at_the_portal_url():
    for code in (11200, 11205):
        assert "webhook" in explain(code).lower()


# --- explain -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [30003, "30003", " 30003 ", "30003\n"])
def test_explain_accepts_ints_and_strings(value):
    assert explain(value) == ERRORS[30003]


@pytest.mark.parametrize("value", [None, "", "   "])
def test_explain_nothing_is_empty(value):
    assert explain(value) == ""


@pytest.mark.parametrize("value", [12345, "12345"])
def test_explain_unknown_code(value):
    text = explain(value)
    assert text.startswith("Twilio error 12345 (no explanation on file)")
    assert "https://www.twilio.com/docs/api/errors/12345" in text


def test_explain_non_numeric_value_does_not_build_a_link():
    text = explain("oops")
    assert text.startswith("Twilio error oops (no explanation on file)")
    assert "http" not in text


def test_explain_zero_is_not_empty():
    assert explain(0).startswith("Twilio error 0 (no explanation on file)")


# --- TERMINAL_CODES / RETRYABLE_CODES ----------------------------------------------------------


def test_code_sets_are_frozensets_of_ints():
    for codes in (TERMINAL_CODES, RETRYABLE_CODES):
        assert isinstance(codes, frozenset)
        assert all(isinstance(code, int) for code in codes)


def test_code_sets_are_disjoint_and_explained():
    assert not TERMINAL_CODES & RETRYABLE_CODES
    assert (TERMINAL_CODES | RETRYABLE_CODES) <= set(ERRORS)


@pytest.mark.parametrize("code", MUST_NOT_RETRY)
def test_terminal_codes_include_the_never_retry_list(code):
    assert code in TERMINAL_CODES


@pytest.mark.parametrize("code", [20429, 60212, 30047, 20500, 20503])
def test_retryable_codes(code):
    assert code in RETRYABLE_CODES


@pytest.mark.parametrize("code", [30008, 30036, 63038, 11200, 11205])
def test_codes_left_to_a_human(code):
    # 30008 may have been delivered after all, 30036 may be stale, 63038 resets tomorrow,
    # 112xx are Twilio calling us: none should be retried blindly and soon.
    assert code not in TERMINAL_CODES and code not in RETRYABLE_CODES
    assert not is_retryable(code, None)


# --- is_retryable ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
def test_429_and_5xx_are_retried(status):
    assert is_retryable(None, status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 499, 200, 301, 600])
def test_other_statuses_are_not(status):
    assert not is_retryable(None, status)


@pytest.mark.parametrize("code", MUST_NOT_RETRY)
@pytest.mark.parametrize("status", [None, 400, 429, 500, 503])
def test_a_terminal_code_wins_over_the_http_status(code, status):
    assert not is_retryable(code, status)


@pytest.mark.parametrize("status", [None, 400, 429])
def test_a_retryable_code_wins_over_the_http_status(status):
    assert is_retryable(20429, status)
    assert is_retryable(60212, status)


def test_typical_rest_errors():
    assert is_retryable(20429, 429)
    assert not is_retryable(21211, 400)
    assert not is_retryable(21610, 400)
    assert not is_retryable(20003, 401)
    assert not is_retryable(20404, 404)
    assert is_retryable(20500, 500)


def test_unknown_code_defers_to_the_http_status():
    assert is_retryable(99999, 503)
    assert is_retryable(99999, 429)
    assert not is_retryable(99999, 400)
    assert not is_retryable(99999, None)


def test_code_that_is_really_an_http_status():
    # twilio-python uses the HTTP status as the code when the body has none.
    assert is_retryable(429, None)
    assert is_retryable(503, None)
    assert not is_retryable(400, None)
    assert not is_retryable(404, None)


def test_no_information_is_not_retryable():
    # Timeouts and connection errors are classified by the caller, which knows whether the
    # request may already have taken effect.
    assert not is_retryable(None, None)


def test_string_codes_from_webhooks_are_accepted():
    assert not is_retryable("21610", None)  # type: ignore[arg-type]
    assert is_retryable("20429", None)  # type: ignore[arg-type]
    assert not is_retryable("", 400)  # type: ignore[arg-type]
    assert is_retryable("", 503)  # type: ignore[arg-type]


def test_every_explained_or_classified_code_has_one_name():
    """Codes are named once in `tenants.twilio_codes`; the table and the retry sets use the names."""
    named = {value: name for name, value in vars(twilio_codes).items() if name.isupper()}
    assert len(named) == len([n for n in vars(twilio_codes) if n.isupper()])  # no code named twice
    assert set(ERRORS) | TERMINAL_CODES | RETRYABLE_CODES <= set(named)
    assert twilio_codes.OPTED_OUT == 21610 and twilio_codes.TOO_MANY_REQUESTS == 20429
