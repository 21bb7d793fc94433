"""Transport failures told apart: "definitely not sent" (the request never reached Twilio) from
"maybe sent" (it left, the answer was lost), which is what decides a lookup before a resend."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from tenants.twilio import TwilioError
from tenants.twilio_errors import maybe_sent_http, maybe_sent_transport


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _failure(url: str, **kwargs) -> requests.RequestException:
    try:
        requests.post(url, data={"Body": "hi"}, **kwargs)
    except requests.RequestException as exc:
        return exc
    pytest.fail("the request did not fail")


def test_a_refused_connection_was_definitely_not_sent():
    exc = _failure(f"http://127.0.0.1:{_closed_port()}/Messages.json", timeout=2)
    error = TwilioError.from_exception(exc)
    assert error.retryable and not error.maybe_sent


def test_a_dns_failure_was_definitely_not_sent():
    exc = _failure("http://twilio.invalid/Messages.json", timeout=2)
    assert not maybe_sent_transport(exc)


def _server(answer) -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(65536)
            answer(conn)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def test_a_connection_closed_after_the_request_left_may_have_been_sent():
    port = _server(lambda conn: None)  # reads the request, closes without an answer
    exc = _failure(f"http://127.0.0.1:{port}/Messages.json", timeout=5)
    error = TwilioError.from_exception(exc)
    assert error.retryable and error.maybe_sent


def test_a_read_timeout_may_have_been_sent():
    release = threading.Event()
    port = _server(lambda conn: release.wait(5))
    exc = _failure(f"http://127.0.0.1:{port}/Messages.json", timeout=0.3)
    release.set()
    assert isinstance(exc, requests.ReadTimeout) and maybe_sent_transport(exc)


@pytest.mark.parametrize(("status", "maybe"), [(400, False), (429, False), (500, True), (503, True), (None, False)])
def test_answered_requests(status, maybe):
    assert maybe_sent_http(status) is maybe
