"""Fixtures for the verify tests: Celery inline; a tenant the sandbox knows (with an SMS sender
for fallback codes) and a consent form of it; SendGrid pointed at the sandbox, and a client
that posts Event Webhook batches signed with the sandbox's key."""

from __future__ import annotations

import json
import time

import pytest

from sandbox.state import MAGIC_FROM
from tenants.audit import SYSTEM
from tests.messaging.conftest import celery_eager  # noqa: F401 - shared fixture
from tests.tenants.factories import PhoneNumberFactory
from verify.consent.admin import consent_form_create

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


@pytest.fixture
def verify_tenant(request, tenant, sandbox, sandbox_settings):
    """`tenant` as a subaccount of the sandbox, owning the sandbox's always-accepted sender."""
    request.getfixturevalue("celery_eager")
    sandbox.register_account(tenant.account_sid, tenant.auth_token.reveal())
    sandbox_settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # status callbacks go nowhere
    sandbox_settings.TWILIO_HTTP_TIMEOUT = 1.0
    PhoneNumberFactory(tenant=tenant, phone_number=MAGIC_FROM)
    return tenant


DISCLOSURE = (
    "By ticking the box you agree to receive marketing texts from Acme at the number given. "
    "Up to 4 msgs/month. Msg & data rates may apply. Consent is not a condition of purchase. "
    "Reply HELP for help, STOP to cancel."
)


@pytest.fixture
def consent_form(verify_tenant):
    """A published marketing form of `verify_tenant` (version 1), asking for an email too."""
    return consent_form_create(
        tenant=verify_tenant,
        data={
            "slug": "offers",
            "title": "Acme offers by text",
            "purpose": "marketing",
            "brand": "Acme",
            "frequency": "Up to 4 msgs/month",
            "disclosure_text": DISCLOSURE,
            "collect_email": True,
            "is_published": True,
        },
        audit=SYSTEM,
    )
