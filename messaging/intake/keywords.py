"""Recognising opt-out, opt-in and help keywords, and free-text revocations, in inbound SMS.

Two different questions are answered here:

* :func:`classify_keyword`: is the *whole* message one of Twilio's keywords (or a tenant's own)?
  This mirrors what Twilio does on the carrier side, so the portal's opt-out list agrees with
  Twilio's. "STOP" and " stop! " are keywords; "STOP please" is not.
* :func:`looks_like_revocation`: is the message a clear request to stop that is *not* a keyword?
  Since the FCC's order 24-24 (in force 11 April 2025) consent may be revoked "by any reasonable
  means", so "please stop texting me" counts even though Twilio ignores it. The portal must
  honour those within 10 business days.

All functions are pure so they can be used from webhooks, services and data migrations alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

__all__ = [
    "DEFAULT_HELP_KEYWORDS",
    "DEFAULT_OPT_IN_KEYWORDS",
    "DEFAULT_OPT_OUT_KEYWORDS",
    "HELP",
    "OPT_IN",
    "OPT_OUT",
    "REVOCATION_PATTERNS",
    "classify_keyword",
    "looks_like_revocation",
    "normalize_keyword",
]

OPT_OUT = "opt_out"
OPT_IN = "opt_in"
HELP = "help"

#: Twilio's default opt-out keywords (REVOKE and OPTOUT since 2025) plus "OPT OUT", which the
#: FCC lists among the words that always revoke consent.
DEFAULT_OPT_OUT_KEYWORDS: tuple[str, ...] = (
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
)
DEFAULT_OPT_IN_KEYWORDS: tuple[str, ...] = ("START", "YES", "UNSTOP")
DEFAULT_HELP_KEYWORDS: tuple[str, ...] = ("HELP", "INFO")

#: Twilio's ``OptOutType`` webhook field (Advanced Opt-Out) mapped to our categories.
_OPT_OUT_TYPES: dict[str, str] = {"STOP": OPT_OUT, "START": OPT_IN, "HELP": HELP}

# Typographic variants phones insert (smart quotes, non-breaking and zero-width spaces).
_TRANSLATE = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u00b4": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u00a0": " ",
        "\u200b": "",
        "\u200c": "",
        "\u200d": "",
        "\ufeff": "",
        # NUL, stored as U+FFFD (messaging.intake.params.params_without_nul), is noise like
        # whitespace: "STOP\x00" is a STOP.
        "\x00": " ",
        "\ufffd": " ",
    }
)
_QUOTES = "\"'`"
# Leading: quotes and Spanish inverted marks ("¡BAJA!"). Trailing: sentence punctuation,
# quotes, and the ellipsis character.
_LEADING_STRIP = _QUOTES + "¡¿"
_TRAILING_STRIP = _QUOTES + ".!?,;:\u2026"
_WHITESPACE = re.compile(r"\s+")


def normalize_keyword(body: str) -> str:
    """Canonical form of a message body for keyword comparison.

    Strips surrounding whitespace, surrounding quotes, leading ``¡``/``¿`` and trailing
    punctuation (``. ! ? , ; :``), collapses inner whitespace to one space and upper-cases
    (after ``casefold`` so e.g. ``ß`` compares as ``SS``). Accents are kept: "ARRÊT" stays
    "ARRÊT" (see :func:`classify_keyword` for accent-insensitive matching).
    """
    text = unicodedata.normalize("NFC", body or "").translate(_TRANSLATE)
    text = _WHITESPACE.sub(" ", text).strip()
    previous = None
    while text != previous:  # e.g. '"Stop!"' needs quotes, then "!", then nothing
        previous = text
        text = text.lstrip(_LEADING_STRIP).rstrip(_TRAILING_STRIP).strip()
    return text.casefold().upper()


def _fold(keyword: str) -> str:
    """Accent-insensitive comparison key: "ARRÊT" and "ARRET" both become "ARRET".

    Tenants type their keywords with or without accents, and so do their contacts.
    """
    decomposed = unicodedata.normalize("NFKD", normalize_keyword(keyword))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _keys(defaults: Iterable[str], extras: Iterable[str]) -> frozenset[str]:
    return _folded_keys((*defaults, *extras))


@lru_cache(maxsize=256)
def _folded_keys(words: tuple[str, ...]) -> frozenset[str]:
    """Folded once per distinct keyword list (Twilio's defaults plus a tenant's own), not on
    every inbound message: it was 60 normalisations per text."""
    return frozenset(_fold(word) for word in words if normalize_keyword(word))


def classify_keyword(
    body: str,
    *,
    opt_out_type: str | None = None,
    extra_opt_out: Iterable[str] = (),
    extra_opt_in: Iterable[str] = (),
    extra_help: Iterable[str] = (),
) -> str | None:
    """Return ``"opt_out"``, ``"opt_in"``, ``"help"`` or None for an inbound message.

    ``opt_out_type`` is Twilio's ``OptOutType`` field: when present Twilio has already acted on
    the keyword (under the Messaging Service's own keyword list), so it is authoritative and
    the body is not consulted. An unrecognised value falls back to body matching.

    Otherwise the whole normalized body must equal a keyword; the tenant's extras are compared
    the same way and accent-insensitively. When a word is in more than one list, opt-out wins:
    wrongly stopping is recoverable, wrongly sending is a compliance violation.
    """
    if opt_out_type:
        kind = _OPT_OUT_TYPES.get(opt_out_type.strip().upper())
        if kind is not None:
            return kind

    key = _fold(body)
    if not key:
        return None
    if key in _keys(DEFAULT_OPT_OUT_KEYWORDS, extra_opt_out):
        return OPT_OUT
    if key in _keys(DEFAULT_OPT_IN_KEYWORDS, extra_opt_in):
        return OPT_IN
    if key in _keys(DEFAULT_HELP_KEYWORDS, extra_help):
        return HELP
    return None


# --- Free-text revocation ---------------------------------------------------------------------
#
# The rule: a message is a revocation when it asks the *sender* to stop contacting the person,
# in one of the phrasings below. The patterns are matched against the lower-cased body with
# accents removed and apostrophes straightened, so they are written in plain ASCII.
#
# To stay clear of ordinary conversation:
# * a bare "stop" only counts when everything around it is politeness ("please stop",
#   "stop please!!") or another opt-out word; "Can you stop by at 5?" and "Stop at the store
#   on the way?" are not revocations;
# * a sentence that is only a stop word counts ("Who is this? STOP"), except CANCEL and END,
#   which are everyday words in appointment conversations ("Cancel. I'll call to rebook");
# * "stop"/"don't" need a contact verb (texting, messaging, sending, ...) as their object;
# * a request limited in time ("don't text me after 9pm", "stop texting me while I'm at
#   work") is a scheduling wish, not a revocation;
# * "take me off" / "remove me" followed by a schedule word ("the schedule", "the shift") is a
#   work-roster request.
# When in doubt the patterns lean towards revocation: a missed revocation is a TCPA violation,
# a false one costs a confirmation text and an admin review.

_CONTACT_VERB = (
    r"(?:text(?:ing)?|messag(?:e|ing)|msg|sms(?:ing)?|send(?:ing)?|contact(?:ing)?|"
    r"call(?:ing)?|email(?:ing)?|e-mail(?:ing)?|spam(?:ming)?|bother(?:ing)?)"
)
# What may not follow the request for it to be a revocation: a time restriction ("after 9pm",
# "while I'm at work", "today") or conversation ("don't text me back").
_NOT_LIMITED = (
    r"(?!\s+(?:after(?!\s+(?:this|that|now|today)\b)|before|until|till|til|at|during|"
    r"between|on|while|when|today|tonight|"
    r"tomorrow|back|yet|right\s+now|this\s+(?:morning|afternoon|evening|week|weekend)|"
    r"so\s+(?:early|late|often|much))\b)"
)
# Work-roster objects: "take me off the schedule" is not about messages.
_ROSTER = (
    r"(?:the\s+|your\s+|this\s+|that\s+|my\s+)?"
    r"(?:schedule|shift|rota|roster|calendar|wait\s*list|waiting\s+list|appointment|booking|"
    r"reservation|team|project|rotation|case|ticket|order)s?\b"
)
_POLITE = (
    r"(?:please|pls|plz|now|thanks|thank\s+you|thx|ty|immediately|asap|already|ok|okay|"
    r"no\s+more|for\s+good|forever|i\s+said)"
)
_STOP_WORD = r"(?:stop|stopall|unsubscribe|cancel|end|quit|revoke|opt\s*-?\s*out)"
_MESSAGES = r"(?:messages|texts|msgs|sms|spam|notifications|alerts|marketing|promotions)"

#: The revocation phrasings, one per line, in the order they are tried.
REVOCATION_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern)
    for pattern in (
        # English ------------------------------------------------------------------------------
        # Opt-out words wrapped only in politeness: "please stop", "STOP please", "stop stop".
        rf"^(?:{_POLITE}\s+)*{_STOP_WORD}(?:\s+(?:{_STOP_WORD}|{_POLITE}))*$",
        # "stop it", "quit it please" (not "cancel it" / "end it": appointments, subscriptions)
        rf"^(?:{_POLITE}\s+)*(?:stop|quit)\s+it(?:\s+{_POLITE})*$",
        # "stop texting me", "stop sending", "quit messaging us"; not "I'll stop texting you".
        rf"\b(?:stop|quit|cease)\s+{_CONTACT_VERB}\b(?:\s+(?:me|us)\b)?+(?!\s+you\b)"
        rf"{_NOT_LIMITED}",
        # "stop these messages", "stop the texts", "end all notifications"
        rf"\b(?:stop|quit|cease|end)\s+(?:all\s+)?(?:these\s+|the\s+|this\s+|your\s+|"
        rf"those\s+)?{_MESSAGES}\b",
        # "don't text me", "do not contact us", "never message me again";
        # not "don't call me, text me instead".
        rf"\b(?:don'?t|do\s+not|never)\s+{_CONTACT_VERB}\s+(?:me|us)\b{_NOT_LIMITED}"
        r"(?!.*\b(?:instead|rather)\b)",
        # "no more messages", "no more texts please"
        rf"\bno\s+more\s+(?:{_MESSAGES}|texting|emails|calls)\b{_NOT_LIMITED}",
        # "I don't want these messages", "no longer want texts"
        rf"\b(?:don'?t|do\s+not|no\s+longer)\s+want\s+(?:any\s+)?(?:more\s+)?"
        rf"(?:these\s+|your\s+|the\s+|those\s+)?{_MESSAGES}\b",
        # "remove me", "remove me from this list", "remove my number"; "take me off (the list)"
        rf"\bremove\s+(?:me|us|my\s+(?:number|phone|name|contact))\b"
        rf"(?!\s+(?:from\s+)?{_ROSTER})",
        rf"\btake\s+(?:me|us|my\s+(?:number|phone|name))\s+off\b(?!\s+{_ROSTER})",
        # "unsubscribe me please", "how do I unsubscribe", "I already unsubscribed"
        r"\bunsubscrib(?:e|ed|ing)\b",
        # "opt me out", "opt-out"
        r"\bopt\s*-?\s*(?:me\s+|us\s+)?out\b",
        # "wrong number": whoever consented no longer has this phone
        r"\bwrong\s+(?:number|person|num)\b",
        r"\bleave\s+me\s+alone\b",
        # Spanish --------------------------------------------------------------------------------
        # "no me envien mas mensajes", "no me manden mas", "no me escribas mas"
        r"\bno\s+me\s+(?:envie[ns]?|mande[ns]?|escrib[ae][ns]?|contacte[ns]?|llame[ns]?)\b"
        r"(?:\s+\w+)?\s+mas\b",
        # "dejen de enviar", "deja de mandarme mensajes"
        r"\bdej(?:en|e|a|ad)\s+de\s+(?:enviar|mandar|escribir|contactar|llamar)",
        # "no quiero recibir mas mensajes", "ya no quiero mensajes"
        r"\bno\s+(?:quiero|deseo)\s+(?:recibir\s+)?(?:mas\s+)?(?:mensajes|sms|textos)\b",
        r"\b(?:darme|dame|denme|dar)\s+de\s+baja\b",
        # French ---------------------------------------------------------------------------------
        # "ne m'envoyez plus", "ne m'ecrivez plus de messages"
        r"\bne\s+m'?\s*(?:envoye[zr]|envoie[sz]?|ecrive[zs]|ecris|contacte[zr]?|appele[zr])"
        r"\s+plus\b",
        # "arretez de m'envoyer des messages"
        r"\barrete[zr]?\s+de\s+m'?\s*(?:envoyer|ecrire|contacter|appeler|spammer)",
        # "je ne veux plus recevoir", "je ne veux plus de messages"
        r"\bne\s+(?:veux|souhaite)\s+plus\s+(?:recevoir|de\s+(?:messages|sms))\b",
        r"\b(?:desabonner|desinscrire|desabonnez|desinscrivez)\b",
        # German ---------------------------------------------------------------------------------
        r"\bkeine\s+(?:sms|nachrichten|werbung)\s+mehr\b",
        r"\b(?:abmelden|abbestellen)\b",
    )
)


#: Opt-out words that revoke even as one sentence among others ("Who is this? STOP").
_STOP_SENTENCES = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "REVOKE", "OPTOUT", "OPT OUT", "QUIT"})
_SENTENCE_END = re.compile(r"[.!?;\n\u2026]+")


def _has_stop_sentence(body: str) -> bool:
    """Whether one sentence of ``body`` is nothing but an unambiguous opt-out word."""
    sentences = _SENTENCE_END.split(body)
    return len(sentences) > 1 and any(normalize_keyword(s) in _STOP_SENTENCES for s in sentences)


def _revocation_text(body: str) -> str:
    """Lower-case, accent-free, apostrophe-straightened text with single spaces.

    Punctuation other than apostrophes, hyphens and ``#`` becomes a space so that
    "STOP!!! please" reads as "stop please".
    """
    text = unicodedata.normalize("NFKD", (body or "").translate(_TRANSLATE))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = re.sub(r"[^\w'#-]+", " ", text)
    return _WHITESPACE.sub(" ", text).strip()


def looks_like_revocation(body: str) -> bool:
    """True when ``body`` is a clear free-text request to stop messages but not a keyword.

    Exact keywords (``STOP``, ``UNSUBSCRIBE``...) return False because :func:`classify_keyword`
    handles them and Twilio has already acted on them. A True result should start the same
    opt-out flow as a keyword; see the module comment above :data:`REVOCATION_PATTERNS` for the
    rule and its deliberate bias.
    """
    if classify_keyword(body) is not None:
        return False
    text = _revocation_text(body)
    if not text:
        return False
    if _has_stop_sentence(body):
        return True
    return any(pattern.search(text) for pattern in REVOCATION_PATTERNS)
