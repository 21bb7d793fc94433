"""Fixtures for verify's email tests: Celery inline, SendGrid pointed at the sandbox, and a
client that posts Event Webhook batches signed with the sandbox's key."""

from __future__ import annotations

import json
import time

import pytest

from tests.messaging.conftest import celery_eager  # noqa: F401 - shared fixture

EVENTS_PATH = "/webhooks/sendgrid/events/"


class SendGridWebhookClient:
    """Posts event batches as SendGrid does: raw JSON, ECDSA-signed over timestamp + body."""

    def __init__(self, client, sandbox):
        self.client = client
        self.sandbox = sandbox

    def post(self, events, *, timestamp: str | None = None, headers: dict | None = None, body: str | None = None):
        body = json.dumps(events) if body is None else body
        signed = self.sandbox.sendgrid_sign(body, timestamp or str(int(time.time())))
        extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in {**signed, **(headers or {})}.items()}
        return self.client.post(EVENTS_PATH, data=body, content_type="application/json", **extra)


@pytest.fixture
def sendgrid_webhook(client, sandbox, sandbox_settings):
    return SendGridWebhookClient(client, sandbox)
