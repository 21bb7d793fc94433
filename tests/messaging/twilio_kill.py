"""Test-only entry point for delivery processes that die right after Twilio accepted a message.

`test_delivery_kill.py` starts its workers through this module, never the portal's code:
    python -m tests.messaging.twilio_kill deliver <message id>   one delivery, outcome as JSON
    python -m tests.messaging.twilio_kill celery <celery args>   a Celery worker (pool processes
                                                                  fork from it and inherit the wrap)
It wraps the Twilio SDK's HTTP client (`TwilioHttpClient.request`, under every client the
portal's factory builds): when Twilio answers 201 to a Messages create POST while the file
named by TWILIO_KILL_FILE exists, the file is deleted, so the fault fires once across processes
(the redelivered task then runs normally), and the process SIGKILLs itself: Twilio has the
message, the portal has not saved its SID.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from urllib.parse import urlsplit

import django
from celery.__main__ import main as celery_main
from twilio.http.http_client import TwilioHttpClient

KILL_FILE_ENV = "TWILIO_KILL_FILE"


def is_message_create(method: str, url: str, status_code: int) -> bool:
    return method.upper() == "POST" and urlsplit(url).path.endswith("/Messages.json") and status_code == 201


def kill_once() -> None:
    """SIGKILL this process if the kill file is armed, disarming it first."""
    path = os.environ.get(KILL_FILE_ENV, "")
    if not path:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        return  # not armed, or another process took it
    sys.stderr.write(f"twilio_kill: Twilio accepted the message; SIGKILL pid {os.getpid()}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    original = TwilioHttpClient.request

    def request(self, method, url, *args, **kwargs):
        response = original(self, method, url, *args, **kwargs)
        if is_message_create(method, url, response.status_code):
            kill_once()
        return response

    TwilioHttpClient.request = request


def deliver(message_id: int) -> None:
    """One `message_deliver` run, printing {"outcome": ...} or {"retry": ...} as its last line."""
    django.setup()
    sending = importlib.import_module("messaging.delivery.attempts")  # needs the app registry: after setup
    try:
        print(json.dumps({"outcome": sending.message_deliver(message_id=message_id)}))
    except sending.DeliveryRetry as exc:
        print(json.dumps({"retry": str(exc)}))


def main(argv: list[str]) -> None:
    install()
    command, args = argv[0], argv[1:]
    if command == "deliver":
        deliver(int(args[0]))
    elif command == "celery":
        sys.argv = ["celery", *args]
        celery_main()
    else:
        raise SystemExit(f"unknown command {command!r}: deliver <message id> | celery <args>")


if __name__ == "__main__":
    main(sys.argv[1:])
