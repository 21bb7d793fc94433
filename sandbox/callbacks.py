"""Callbacks out: webhooks (status callbacks, TwiML fetches, inbound SMS) signed exactly as
Twilio signs them (`X-Twilio-Signature`, HMAC-SHA1 with the account's current primary auth
token), retried once on a connection failure or timeout, and recorded for inspection."""

from __future__ import annotations

import threading
import uuid
from typing import Any
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

from .state import SandboxState, iso, logger, utc_now

WEBHOOK_TIMEOUT = 15.0


def signed_headers(url: str, params: dict[str, str], token: str) -> dict[str, str]:
    """The headers Twilio sends with a webhook, signature over the URL and POST params."""
    return {
        "X-Twilio-Signature": RequestValidator(token).compute_signature(url, params),
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        "User-Agent": "TwilioProxy/1.1",
    }


class CallbacksApi(SandboxState):
    """Sends the sandbox's webhooks, off the request thread where Twilio would."""

    def webhooks(self) -> list[dict[str, Any]]:
        """The last webhooks sent, oldest first, with their outcomes."""
        with self._lock:
            return [dict(w) for w in self._webhooks]

    def _spawn(self, target: Any, *args: Any) -> None:
        """Run a status progression in the background: Twilio calls back after answering."""
        threading.Thread(target=target, args=args, daemon=True, name="sandbox-callbacks").start()

    def _deliver_webhook(
        self, kind: str, url: str, params: dict[str, str], token: str, *, method: str = "POST"
    ) -> requests.Response | None:
        """Send a webhook signed like Twilio; retry once on connect/timeout; never raise."""
        if method == "GET":
            url = url + ("&" if "?" in url else "?") + urlencode(params)
            signed_params: dict[str, str] = {}
        else:
            signed_params = params
        headers = signed_headers(url, signed_params, token)
        record: dict[str, Any] = {"kind": kind, "url": url, "method": method, "params": params}
        response, error = None, None
        for _attempt in range(2):
            try:
                if method == "GET":
                    response = requests.get(url, headers=headers, timeout=WEBHOOK_TIMEOUT)
                else:
                    response = requests.post(url, data=params, headers=headers, timeout=WEBHOOK_TIMEOUT)
                break
            except (requests.ConnectionError, requests.Timeout) as exc:
                error = str(exc)
            except requests.RequestException as exc:
                error = str(exc)
                break
        record.update(
            status_code=response.status_code if response is not None else None,
            error=None if response is not None else error,
            date=iso(utc_now()),
        )
        with self._lock:
            self._webhooks.append(record)
        if response is None:
            logger.warning("Webhook %s to %s failed: %s", kind, url, error)
        elif response.status_code >= 400:
            logger.warning("Webhook %s to %s answered %s", kind, url, response.status_code)
        return response
