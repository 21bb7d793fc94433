"""No customer number and no message body in any log line: the scrub filter, and that every
handler carries it (Django's LOGGING, the Celery worker's loggers, gunicorn's access log)."""

import io
import logging
import runpy
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery.signals import after_setup_logger, after_setup_task_logger
from django.conf import settings

from tenants.logging import DROPPED, LogScrubFilter, log_text_scrub

CUSTOMER = "+14155550100"
DIGITS = CUSTOMER[2:]
BODY = "Hi Ana, your code is 4411"


def _leaks(text: str) -> list[str]:
    forms = [CUSTOMER, CUSTOMER[1:], DIGITS, "%2B" + CUSTOMER[1:], BODY, "code is"]
    return [form for form in forms if form in text]


def _emit(record_logger: logging.Logger, call) -> str:
    """What a handler carrying the filter writes for the records `call` logs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s|%(body)s|%(to)s"))
    handler.addFilter(LogScrubFilter())
    record_logger.addHandler(handler)
    record_logger.setLevel(logging.DEBUG)
    record_logger.propagate = False
    try:
        call()
    finally:
        record_logger.removeHandler(handler)
    return stream.getvalue()


def test_numbers_masked_and_bodies_dropped_in_message_args_and_extra():
    log = logging.getLogger("tests.scrub.fields")
    written = _emit(
        log,
        lambda: log.warning(
            "Send to %s failed: %s",
            CUSTOMER,
            f"Messages.json?To=%2B{CUSTOMER[1:]}&Body={BODY.replace(' ', '+')}",
            extra={"body": BODY, "to": {"number": DIGITS, "params": [f"%2B{CUSTOMER[1:]}"]}},
        ),
    )
    assert not _leaks(written), written
    assert "+1******0100" in written and "%2B1******0100" in written
    assert f"Body={DROPPED}" in written and f"|{DROPPED}|" in written


def test_exception_text_scrubbed_postgres_context_included():
    log = logging.getLogger("tests.scrub.exception")
    pg_error = (
        'new row for relation "messaging_message" violates check constraint\n'
        f"DETAIL:  Failing row contains (7, {BODY}, {CUSTOMER}).\n"
        f"CONTEXT:  unnamed portal parameter $3 = '{BODY}'"
    )

    def fail():
        try:
            raise ValueError(pg_error + f" while sending to {CUSTOMER}")
        except ValueError:
            log.exception("Webhook %s failed", f"/t/acme/numbers/{CUSTOMER}/history/", extra={"body": "", "to": ""})

    written = _emit(log, fail)
    assert "Traceback" in written and "ValueError" in written
    assert not _leaks(written), written
    assert f"Failing row contains ({DROPPED})" in written and f"$3 = '{DROPPED}'" in written


def test_query_values_in_any_number_format_masked_dates_kept():
    line = (
        '127.0.0.1 - - [03/Dec/2026:12:00:00 +0000] "GET /t/acme/messages/?phone=%28415%29+555-0100'
        f'&created_from=2026-12-01&to=%2B{CUSTOMER[1:]}&body=Hi+there&cursor=eyJpZCI6IDEyfQ HTTP/1.1" 200 5120'
    )
    scrubbed = log_text_scrub(line)
    assert "555-0100" not in scrubbed and DIGITS not in scrubbed and "Hi+there" not in scrubbed
    assert "phone=******0100" in scrubbed and "to=%2B1******0100" in scrubbed
    assert "created_from=2026-12-01" in scrubbed and "cursor=eyJpZCI6IDEyfQ" in scrubbed and "200 5120" in scrubbed
    assert log_text_scrub(scrubbed) == scrubbed  # several handlers may scrub one record


def _all_handlers():
    # The handlers our LOGGING sets up: the root's and those of every logger it names. (Other
    # tests start Celery workers in-process, which attach handlers of their own to loggers such
    # as redis' "push_response"; a real worker gets the filter through the Celery signal hooks
    # tested below.)
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in settings.LOGGING["loggers"]]
    for logger in loggers:
        for handler in logger.handlers:
            # pytest's capture handlers are the test run's own; a NullHandler writes nothing
            if not type(handler).__module__.startswith("_pytest") and not isinstance(handler, logging.NullHandler):
                yield logger.name, handler


def test_every_django_handler_scrubs():
    assert settings.LOGGING["filters"]["scrub"]["()"] == "tenants.logging.LogScrubFilter"
    assert all("scrub" in handler["filters"] for handler in settings.LOGGING["handlers"].values())
    unfiltered = [
        (name, handler)
        for name, handler in _all_handlers()
        if not any(isinstance(f, LogScrubFilter) for f in handler.filters)
    ]
    assert not unfiltered


@pytest.mark.django_db
def test_django_request_warning_carries_no_number(client, viewer):
    """Django's 404 warning names the path; a number history URL holds the number."""
    console = next(h for _, h in _all_handlers() if any(isinstance(f, LogScrubFilter) for f in h.filters))
    stream = io.StringIO()
    previous = console.setStream(stream)
    try:
        client.force_login(viewer)
        response = client.get(f"/t/no-such-tenant/numbers/{CUSTOMER}/history/?to=%2B{CUSTOMER[1:]}&body=Hi")
    finally:
        console.setStream(previous)
    assert response.status_code == 404
    written = stream.getvalue()
    assert "Not Found" in written and "+1******0100" in written
    assert not _leaks(written), written


@pytest.mark.parametrize("signal", [after_setup_logger, after_setup_task_logger])
def test_celery_worker_loggers_get_the_filter(signal):
    import commsportal.celery  # noqa: F401  (connects the hooks, as the worker does at start)

    logger = logging.getLogger(f"tests.scrub.celery.{signal.name}")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    try:
        signal.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None, format="", colorize=False)
        signal.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None, format="", colorize=False)
        assert sum(isinstance(f, LogScrubFilter) for f in handler.filters) == 1  # installed once
    finally:
        logger.removeHandler(handler)


def test_gunicorn_access_log_masks_numbers_in_standard_format(tmp_path):
    from gunicorn.config import Config

    conf = runpy.run_path(str(Path(settings.BASE_DIR) / "gunicorn.conf.py"))
    assert "access_log_format" not in conf  # gunicorn's standard format is kept
    cfg = Config()
    cfg.set("logger_class", conf["logger_class"])
    access = tmp_path / "access.log"
    cfg.set("accesslog", str(access))
    glog = cfg.logger_class(cfg)
    path, query = f"/t/acme/numbers/{CUSTOMER}/history/", f"to=%2B{CUSTOMER[1:]}&phone={DIGITS}&body=Hi+Ana"
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"{path}?{query}",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": f"https://portal.example/t/acme/messages/?to=%2B{CUSTOMER[1:]}",
    }
    response = SimpleNamespace(status="200 OK", response_length=512, headers=(), sent=512)
    request = SimpleNamespace(headers=(("Referer", environ["HTTP_REFERER"]),))
    glog.access(response, request, environ, timedelta(milliseconds=12))
    for handler in glog.access_log.handlers:
        handler.flush()
    line = access.read_text()
    assert f'"GET /t/acme/numbers/+1******0100/history/?to=%2B1******0100&phone=******0100&body={DROPPED}' in line
    assert " 200 512 " in line
    assert not _leaks(line) and "Hi+Ana" not in line, line


def test_invitation_tokens_never_reach_a_log():
    line = '127.0.0.1 - - "GET /invite/Zx9_secret-token/ HTTP/1.1" 200 "/invite/Zx9_secret-token/?next=/"'
    scrubbed = log_text_scrub(line)
    assert "Zx9_secret-token" not in scrubbed
    assert scrubbed.count("/invite/") == 2
