"""SMS encoding and segment counts at the exact boundaries carriers use."""

from __future__ import annotations

import pytest

from messaging.delivery.segments import (
    GSM7,
    GSM7_BASIC_CHARS,
    GSM7_EXTENSION_CHARS,
    UCS2,
    sms_encoding,
    sms_length,
    sms_segments,
)

EMOJI = "\U0001f600"  # 😀, outside the BMP: two UTF-16 code units
CYRILLIC = "Ж"  # in the BMP, not GSM: one UTF-16 code unit

# --- character tables --------------------------------------------------------------------------


def test_basic_table_has_the_127_printable_gsm_characters():
    # 128 code points minus the escape code 0x1B.
    assert len(GSM7_BASIC_CHARS) == 127
    assert "\x1b" not in GSM7_BASIC_CHARS


def test_extension_table():
    assert GSM7_EXTENSION_CHARS == set("^{}\\[~]|€\f")
    assert not GSM7_BASIC_CHARS & GSM7_EXTENSION_CHARS


# --- sms_encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello world",
        "Your code is 123456. Reply STOP to opt out.",
        "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ",
        "¡¿ÄÖÑÜ§äöñüà¤",
        "line one\nline two\r\n",
        "Price: 5€ [approx] {x} ~ ^ | \\",
        "\f",
    ],
)
def test_gsm7_texts(text):
    assert sms_encoding(text) == GSM7 == "GSM-7"


@pytest.mark.parametrize(
    "text",
    [
        EMOJI,
        "Hi " + EMOJI,
        CYRILLIC,
        "Привет",
        "你好",
        "Don\u2019t forget",  # curly apostrophe
        "\u201cquoted\u201d",
        "ç",  # only Ç is in the table; counting ç as UCS-2 errs towards more segments
        "á",  # only à, é, è, ì, ò, ù, ä, ö, ü, ñ are
        "í",
        "ó",
        "ú",
        "Ê",
        "\t",  # tab is not in the table
        "`",  # backtick neither
        "\x1b",
        "a" * 500 + "€" + "é" + "ü" + EMOJI,
    ],
)
def test_ucs2_texts(text):
    assert sms_encoding(text) == UCS2 == "UCS-2"


def test_every_table_character_is_gsm7():
    for ch in GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS:
        assert sms_encoding(ch) == GSM7, repr(ch)


# --- sms_length --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("abc", 3),
        ("€", 2),
        ("a€b", 4),
        ("^{}\\[~]|€\f", 20),
        (CYRILLIC * 3, 3),
        (EMOJI, 2),
        ("a" + EMOJI, 3),  # the emoji makes "a" a UCS-2 code unit too
        ("€" + CYRILLIC, 2),  # in UCS-2 € is one code unit
    ],
)
def test_sms_length(text, expected):
    assert sms_length(text) == expected


# --- sms_segments: GSM-7 -----------------------------------------------------------------------


def test_empty_text_is_zero_segments():
    assert sms_segments("") == 0


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (1, 1),
        (159, 1),
        (160, 1),
        (161, 2),
        (153 * 2, 2),
        (153 * 2 + 1, 3),
        (153 * 3, 3),
        (153 * 3 + 1, 4),
        (1530, 10),
        (1600, 11),
    ],
)
def test_gsm7_boundaries(length, expected):
    assert sms_segments("a" * length) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("€" * 80, 1),  # 160 septets
        ("a" * 159 + "€", 2),  # 161 septets
        ("a" * 158 + "€", 1),  # 160 septets
        ("€" * 81, 2),  # 162 septets
        ("[" * 152, 2),  # 304 septets: 76 pairs fill 152 of each 153-septet segment
        ("[" * 153, 3),  # 306 septets, yet 3 segments: pairs are not split
    ],
)
def test_gsm7_extension_characters_count_two(text, expected):
    assert sms_segments(text) == expected


def test_escape_pair_is_never_split_across_segments():
    # 152 + 2 + 152 = 306 septets, exactly 2 × 153, but the € cannot straddle segments 1 and 2:
    # segment 1 = 152, segment 2 = € + 151, segment 3 = 1.
    text = "a" * 152 + "€" + "a" * 152
    assert sms_length(text) == 306
    assert sms_segments(text) == 3
    assert sms_segments("a" * 153 + "€" + "a" * 151) == 2  # the pair starts segment 2


def test_accented_gsm_letters_stay_single_septet():
    assert sms_segments("é" * 160) == 1
    assert sms_segments("é" * 161) == 2


# --- sms_segments: UCS-2 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (1, 1),
        (69, 1),
        (70, 1),
        (71, 2),
        (67 * 2, 2),
        (67 * 2 + 1, 3),
        (67 * 3, 3),
        (67 * 3 + 1, 4),
    ],
)
def test_ucs2_boundaries(length, expected):
    assert sms_segments(CYRILLIC * length) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (EMOJI, 1),
        (EMOJI * 35, 1),  # 70 code units
        (EMOJI * 36, 2),  # 72 code units
        ("a" * 68 + EMOJI, 1),  # 70 code units
        ("a" * 69 + EMOJI, 2),  # 71 code units
        ("a" * 159 + EMOJI, 3),  # one emoji turns a 1-segment text into 3
    ],
)
def test_emoji_count_two_code_units(text, expected):
    assert sms_segments(text) == expected


def test_surrogate_pair_is_never_split_across_segments():
    # 66 + 2 + 66 = 134 code units, exactly 2 × 67, but the emoji cannot straddle segments.
    text = CYRILLIC * 66 + EMOJI + CYRILLIC * 66
    assert sms_length(text) == 134
    assert sms_segments(text) == 3
    assert sms_segments(EMOJI * 66) == 2  # 33 pairs (66 of 67 units) per segment
    assert sms_segments(EMOJI * 67) == 3  # 134 units, yet 3 segments


def test_one_non_gsm_character_switches_the_whole_text():
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 159 + "\u2019") == 3  # 160 UCS-2 units: 67 + 67 + 26
    assert sms_segments("a" * 70 + "ç") == 2


def test_realistic_messages():
    assert sms_segments("Acme: your code is 123456. Reply STOP to opt out.") == 1
    assert sms_segments("Acme: ¡Tu cita es mañana a las 10!") == 1
    assert sms_segments("Acme: votre rendez-vous est confirmé ✅") == 1
