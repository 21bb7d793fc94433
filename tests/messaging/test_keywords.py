"""Keyword classification and free-text revocation detection for inbound SMS."""

from __future__ import annotations

import pytest

from messaging.intake.keywords import (
    DEFAULT_HELP_KEYWORDS,
    DEFAULT_OPT_IN_KEYWORDS,
    DEFAULT_OPT_OUT_KEYWORDS,
    HELP,
    OPT_IN,
    OPT_OUT,
    REVOCATION_PATTERNS,
    _revocation_text,
    classify_keyword,
    looks_like_revocation,
    normalize_keyword,
)

# --- defaults ----------------------------------------------------------------------------------


def test_default_lists_match_twilio_and_the_fcc():
    assert set(DEFAULT_OPT_OUT_KEYWORDS) == {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
        "OPT OUT",
    }
    assert set(DEFAULT_OPT_IN_KEYWORDS) == {"START", "YES", "UNSTOP"}
    assert set(DEFAULT_HELP_KEYWORDS) == {"HELP", "INFO"}
    assert (OPT_OUT, OPT_IN, HELP) == ("opt_out", "opt_in", "help")


def test_default_lists_are_disjoint_and_already_normalized():
    lists = [DEFAULT_OPT_OUT_KEYWORDS, DEFAULT_OPT_IN_KEYWORDS, DEFAULT_HELP_KEYWORDS]
    words = [w for lst in lists for w in lst]
    assert len(words) == len(set(words))
    assert all(normalize_keyword(w) == w for w in words)


# --- normalize_keyword -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("stop", "STOP"),
        ("  Stop  ", "STOP"),
        ("stop!", "STOP"),
        ("STOP!!!", "STOP"),
        ("stop.", "STOP"),
        ("stop?", "STOP"),
        ("stop,", "STOP"),
        ("stop;", "STOP"),
        ("stop:", "STOP"),
        ("stop…", "STOP"),
        ('"stop"', "STOP"),
        ("'stop'", "STOP"),
        ("\u201cStop\u201d", "STOP"),  # smart quotes from phone keyboards
        ('"Stop!"', "STOP"),
        ("stop !", "STOP"),
        ("\tstop\n", "STOP"),
        ("opt   out", "OPT OUT"),
        ("opt\u00a0out", "OPT OUT"),  # non-breaking space
        ("\u200bstop", "STOP"),  # zero-width space
        ("¡Baja!", "BAJA"),
        ("arrêt", "ARRÊT"),  # accents kept
        ("straße", "STRASSE"),  # casefold
        ("", ""),
        ("   ", ""),
        ("!!!", ""),
        ("stop please", "STOP PLEASE"),
    ],
)
def test_normalize_keyword(body, expected):
    assert normalize_keyword(body) == expected


def test_normalize_keyword_keeps_inner_punctuation():
    assert normalize_keyword("opt-out") == "OPT-OUT"
    assert normalize_keyword("stop. now") == "STOP. NOW"


def test_normalize_keyword_composes_decomposed_accents():
    assert normalize_keyword("arre\u0302t") == normalize_keyword("arr\u00eat") == "ARRÊT"


def test_normalize_keyword_tolerates_none():
    assert normalize_keyword(None) == ""  # type: ignore[arg-type]


# --- classify_keyword: defaults ----------------------------------------------------------------


@pytest.mark.parametrize("word", DEFAULT_OPT_OUT_KEYWORDS)
def test_default_opt_out_keywords(word):
    assert classify_keyword(word) == OPT_OUT
    assert classify_keyword(word.lower()) == OPT_OUT
    assert classify_keyword(f"  {word.title()}! ") == OPT_OUT


@pytest.mark.parametrize("word", DEFAULT_OPT_IN_KEYWORDS)
def test_default_opt_in_keywords(word):
    assert classify_keyword(word) == OPT_IN
    assert classify_keyword(f" {word.lower()}. ") == OPT_IN


@pytest.mark.parametrize("word", DEFAULT_HELP_KEYWORDS)
def test_default_help_keywords(word):
    assert classify_keyword(word) == HELP
    assert classify_keyword(f"{word.lower()}?") == HELP


@pytest.mark.parametrize(
    "body",
    [
        "STOP please",
        "please stop",
        "stop it",
        "Can you stop by at 5?",
        "yes please",
        "yes, I'll be there",
        "help me",
        "more info",
        "stopp",
        "sto p",
        "S T O P",
        "the end",
        "",
        "   ",
        "!",
        "I'll be there",
    ],
)
def test_only_the_whole_body_counts(body):
    assert classify_keyword(body) is None


def test_spacing_variants_of_opt_out():
    assert classify_keyword("opt out") == OPT_OUT
    assert classify_keyword("Opt  Out!") == OPT_OUT
    assert classify_keyword("optout") == OPT_OUT
    assert classify_keyword("opt-out") is None  # not a keyword; a revocation (see below)


# --- classify_keyword: tenant extras -----------------------------------------------------------


def test_tenant_extra_keywords():
    kwargs = {
        "extra_opt_out": ["BAJA", "ARRET", "ALTO"],
        "extra_opt_in": ["ALTA", "COMENZAR"],
        "extra_help": ["AYUDA", "AIDE"],
    }
    assert classify_keyword("baja", **kwargs) == OPT_OUT
    assert classify_keyword(" Baja. ", **kwargs) == OPT_OUT
    assert classify_keyword("¡BAJA!", **kwargs) == OPT_OUT
    assert classify_keyword("arret", **kwargs) == OPT_OUT
    assert classify_keyword("alta", **kwargs) == OPT_IN
    assert classify_keyword("ayuda", **kwargs) == HELP
    assert classify_keyword("aide", **kwargs) == HELP
    assert classify_keyword("STOP", **kwargs) == OPT_OUT  # defaults still apply
    assert classify_keyword("baja por favor", **kwargs) is None
    assert classify_keyword("baja") is None  # extras are per call, not global


def test_extras_are_accent_insensitive_both_ways():
    assert classify_keyword("arrêt", extra_opt_out=["ARRET"]) == OPT_OUT
    assert classify_keyword("ARRET", extra_opt_out=["ARRÊT"]) == OPT_OUT
    assert classify_keyword("Arrête", extra_opt_out=["arrete"]) == OPT_OUT
    assert classify_keyword("arre\u0302t", extra_opt_out=["ARRÊT"]) == OPT_OUT
    assert classify_keyword("désinscrire", extra_opt_out=["DESINSCRIRE"]) == OPT_OUT


def test_extras_are_normalized_like_the_body():
    assert classify_keyword("baja", extra_opt_out=["  baja! "]) == OPT_OUT
    assert classify_keyword("no mas", extra_opt_out=["NO  MÁS"]) == OPT_OUT


def test_blank_extras_never_match():
    assert classify_keyword("", extra_opt_out=["", "  "]) is None
    assert classify_keyword("!", extra_help=["?"]) is None


def test_extras_accept_any_iterable():
    assert classify_keyword("baja", extra_opt_out=(w for w in ["BAJA"])) == OPT_OUT
    assert classify_keyword("baja", extra_opt_out={"BAJA"}) == OPT_OUT


def test_opt_out_wins_when_a_word_is_in_two_lists():
    # A tenant listing YES as opt-out (or STOP as opt-in) must never make STOP resubscribe.
    assert classify_keyword("STOP", extra_opt_in=["STOP"]) == OPT_OUT
    assert classify_keyword("YES", extra_opt_out=["YES"]) == OPT_OUT
    assert classify_keyword("INFO", extra_opt_in=["INFO"]) == OPT_IN


# --- classify_keyword: Twilio's OptOutType -----------------------------------------------------


@pytest.mark.parametrize(
    ("opt_out_type", "expected"),
    [
        ("STOP", OPT_OUT),
        ("stop", OPT_OUT),
        (" Stop ", OPT_OUT),
        ("START", OPT_IN),
        ("start", OPT_IN),
        ("HELP", HELP),
        ("help", HELP),
    ],
)
def test_opt_out_type_is_authoritative(opt_out_type, expected):
    # Twilio acted on its own keyword list (which may include the service's custom words),
    # whatever the body says.
    assert classify_keyword("Hola, gracias", opt_out_type=opt_out_type) == expected
    assert classify_keyword("YES", opt_out_type=opt_out_type) == expected


def test_opt_out_type_overrides_a_contradicting_body():
    assert classify_keyword("STOP", opt_out_type="START") == OPT_IN
    assert classify_keyword("START", opt_out_type="STOP") == OPT_OUT


@pytest.mark.parametrize("opt_out_type", [None, "", "   ", "UNKNOWN"])
def test_missing_or_unknown_opt_out_type_falls_back_to_the_body(opt_out_type):
    assert classify_keyword("stop", opt_out_type=opt_out_type) == OPT_OUT
    assert classify_keyword("hello", opt_out_type=opt_out_type) is None


# --- looks_like_revocation ---------------------------------------------------------------------

REVOCATIONS = [
    "please stop texting me",
    "Please stop texting me!",
    "STOP TEXTING ME",
    "stop messaging me",
    "Stop sending",
    "stop sending me these",
    "stop contacting me",
    "Quit texting me",
    "stop calling me",
    "stop bothering me",
    "stop these messages",
    "Stop the texts please",
    "stop all messages",
    "remove me from this list",
    "Remove me",
    "please remove me from your list",
    "remove my number",
    "take me off",
    "Take me off your list",
    "take my number off",
    "wrong number",
    "Wrong number!",
    "You have the wrong number",
    "wrong person",
    "no more messages",
    "No more texts please",
    "no more spam",
    "don't text me",
    "Don\u2019t text me",  # curly apostrophe
    "dont text me",
    "do not contact me",
    "Do not message us again",
    "never text me again",
    "unsubscribe me please",
    "How do I unsubscribe?",
    "I already unsubscribed!",
    "please unsubscribe",
    "opt me out",
    "opt-out",
    "opt out please",
    "leave me alone",
    "Just leave me alone.",
    "I don't want these messages",
    "no longer want texts from you",
    "STOP please",
    "please stop",
    "Stop!!! Please",
    "stop now",
    "stop stop stop",
    "ok stop",
    "thank you stop",
    "cancel please",
    "stop it",
    "Quit it please",
    "stop!! no more",
    "I SAID STOP",
    "stop for good",
    "please stop messaging me after this",
    # One sentence that is only a stop word, among others.
    "Who is this? STOP",
    "Who gave you my number?\nstop",
    "STOP. Wrong number",
    "Stop. Please.",
    "I never signed up for this. Unsubscribe!",
    "STOP.",  # is a keyword...
]
REVOCATIONS.remove("STOP.")  # ...so it is not a free-text revocation (see below)

REVOCATIONS_OTHER_LANGUAGES = [
    "no me envíen más mensajes",
    "No me envien mas mensajes",
    "no me mandes más",
    "no me escriban más por favor",
    "dejen de enviar",
    "Dejen de enviarme mensajes",
    "deja de mandarme mensajes",
    "no quiero recibir más mensajes",
    "ya no quiero mensajes",
    "quiero darme de baja",
    "ne m'envoyez plus",
    "Ne m\u2019envoyez plus de SMS",
    "ne m'écrivez plus",
    "arrêtez de m'envoyer des messages",
    "je ne veux plus recevoir de messages",
    "je veux me désabonner",
    "keine SMS mehr",
    "bitte abmelden",
]

ORDINARY_MESSAGES = [
    "Can you stop by at 5?",
    "I'll be there",
    "Stop at the store on the way?",
    "stop by the office tomorrow",
    "Please stop by when you can",
    "Don't stop believing",
    "The bus stops at the corner",
    "I'll stop texting you now, driving",
    "I will stop sending you photos",
    "stop texting while driving!",
    "Don't text me after 9pm",
    "please don't text me before 8am",
    "don't call me at work",
    "don't call me, text me instead",
    "don't text me back, I'll call",
    "stop texting me at night",
    "Can you take me off the schedule for Tuesday?",
    "remove me from the shift on Friday",
    "please remove me from the waitlist",
    "take me off the rota",
    "remove my appointment",
    "cancel my appointment",
    "Cancel it",
    "Cancel. I'll call to rebook",
    "See you at the end. Thanks!",
    "Stop at the store. Thanks!",
    "please stop messaging me after 9",
    "End of the day works for me",
    "The meeting will end at 5",
    "Yes that works",
    "Thanks!",
    "What are your opening hours?",
    "Send me the address please",
    "Who is this?",
    "I'm at the stop",
    "No more questions, see you then",
    "the number is right",
    "Optional: bring a towel",
    "Adopt out the kittens?",
    "",
    "   ",
    "🙂",
    "Est-ce que vous êtes ouverts?",
    "¿A qué hora abren?",
]


@pytest.mark.parametrize("body", REVOCATIONS)
def test_clear_english_requests_are_revocations(body):
    assert looks_like_revocation(body)


@pytest.mark.parametrize("body", REVOCATIONS_OTHER_LANGUAGES)
def test_clear_requests_in_other_languages_are_revocations(body):
    assert looks_like_revocation(body)


@pytest.mark.parametrize("body", ORDINARY_MESSAGES)
def test_ordinary_messages_are_not_revocations(body):
    assert not looks_like_revocation(body)


@pytest.mark.parametrize(
    "body",
    [
        *DEFAULT_OPT_OUT_KEYWORDS,
        "stop",
        " Stop! ",
        "STOP.",
        "unsubscribe",
        "Opt Out",
        "optout",
        "cancel",
        "quit",
        "end",
        "revoke",
        "START",
        "HELP",
    ],
)
def test_exact_keywords_are_not_free_text_revocations(body):
    # classify_keyword handles them, and Twilio has already acted on them.
    assert classify_keyword(body) is not None
    assert not looks_like_revocation(body)


def test_revocation_and_keyword_are_never_both_true():
    for body in [*REVOCATIONS, *REVOCATIONS_OTHER_LANGUAGES, *ORDINARY_MESSAGES]:
        assert not (looks_like_revocation(body) and classify_keyword(body) is not None), body


def test_looks_like_revocation_tolerates_none():
    assert looks_like_revocation(None) is False  # type: ignore[arg-type]


def test_patterns_are_compiled_and_each_one_is_exercised():
    bodies = [*REVOCATIONS, *REVOCATIONS_OTHER_LANGUAGES]
    texts = [_revocation_text(b) for b in bodies]
    unused = [p.pattern for p in REVOCATION_PATTERNS if not any(p.search(t) for t in texts)]
    assert unused == []
