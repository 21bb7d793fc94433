"""No customer number and no message body in any log line.

Logs leave the portal's access rules behind: they are read by whoever runs the servers, shipped
to log stores and kept for long. So every handler (Django's, the Celery worker's and gunicorn's
access log; see `LOGGING` in settings, `commsportal/celery.py` and `gunicorn.conf.py`) carries
`LogScrubFilter`, which rewrites each record before it is formatted:

* phone numbers are masked (`+1******0100`): E.164, URL-encoded (`?to=%2B1…`, the way a path or
  a Twilio error text quotes them), bare valid numbers, and query values that read as a number
  written any other way (`?phone=(415) 555-0100`);
* message bodies are dropped: `Body=` query and form values, a `"body": …` item of a logged
  dict, a `body` key passed in `extra`, and the values PostgreSQL quotes in its error context
  (`unnamed portal parameter $3 = '…'`, `Failing row contains (…)`), which land in tracebacks;
* the exception text is formatted here and scrubbed the same way; the traceback object is
  then let go, so that no handler can format it again unscrubbed.

Masking is idempotent: several handlers share one record and each may run the filter.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from .phones import phone_text_mask

__all__ = ["DROPPED", "LogScrubFilter", "log_filter_install", "log_text_scrub"]

DROPPED = "[dropped]"

#: Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

_QUERY_VALUE = re.compile(r"(?<=[?&;])([\w.\-\[\]]+=)([^&;\s\"'#]*)")
_PHONE_LIKE = re.compile(r"[\d\s().+\-/]+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BODY_PARAM = re.compile(r"(?i)(\bbody=)[^&;\s\"']*")
_BODY_ITEM = re.compile(r"""(?i)(["']body["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2""")
_PG_PARAMETER = re.compile(r"(portal parameter \$\d+ = )'(?:[^']|'')*'(?:\.\.\.)?")
_PG_FAILING_ROW = re.compile(r"(Failing row contains )\(.*\)", re.MULTILINE)


def _query_value(match: re.Match) -> str:
    """A query value typed as a number in any format (`(415) 555-0100`, encoded) masked to its
    last 4 digits; dates and opaque tokens left alone."""
    name, raw = match.groups()
    value = unquote_plus(raw).strip()
    digits = re.sub(r"\D", "", value)
    if len(digits) < 7 or not _PHONE_LIKE.fullmatch(value) or _DATE.match(value):
        return match.group(0)
    if value == "+" + digits:  # compact E.164: masked below, keeping its country code
        return match.group(0)
    return name + "*" * (len(digits) - 4) + digits[-4:]


#: An invitation link is a bearer credential until it is used: its token never reaches a log.
_INVITE_TOKEN = re.compile(r"(/invite/)[^/\s?\"']+")


def log_text_scrub(text: str) -> str:
    """`text` with phone numbers masked, invitation tokens and message bodies (and values
    PostgreSQL quotes) dropped."""
    if not text:
        return text
    text = _INVITE_TOKEN.sub(r"\1" + DROPPED, text)
    text = _BODY_PARAM.sub(r"\1" + DROPPED, text)
    text = _BODY_ITEM.sub(lambda m: f"{m.group(1)}{m.group(2)}{DROPPED}{m.group(2)}", text)
    text = _PG_PARAMETER.sub(rf"\1'{DROPPED}'", text)
    text = _PG_FAILING_ROW.sub(rf"\1({DROPPED})", text)
    text = _QUERY_VALUE.sub(_query_value, text)
    return phone_text_mask(text, national=False)


def _scrub_value(key: str, value):
    if key.lower() == "body":
        return DROPPED
    if isinstance(value, str):
        return log_text_scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value("", v) for v in value)
    return value


class LogScrubFilter(logging.Filter):
    """Masks phone numbers and drops message bodies in a record; never drops the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a malformed call: its own text still gets scrubbed)
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = log_text_scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = log_text_scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = log_text_scrub(record.stack_info)
        for key in set(vars(record)) - _RECORD_FIELDS:
            setattr(record, key, _scrub_value(key, getattr(record, key)))
        return True


def log_filter_install(logger: logging.Logger) -> None:
    """Put `LogScrubFilter` on `logger` and on each of its handlers, once: for loggers configured
    outside Django's LOGGING (the Celery worker's, gunicorn's). On the handlers too, because
    records of child loggers reach a handler without passing its logger's filters."""
    for target in (logger, *logger.handlers):
        if not any(isinstance(f, LogScrubFilter) for f in target.filters):
            target.addFilter(LogScrubFilter())
