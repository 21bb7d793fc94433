"""Fixtures of the voice tests: signed posts of voice callbacks, a tenant the sandbox knows."""

from __future__ import annotations

import pytest

from tests.tenants.factories import random_sid
from tests.voice.callbacks import RECORDING, STATUS


@pytest.fixture
def post_status(twilio_webhook, tenant):
    def post(params: dict, *, query: str = ""):
        return twilio_webhook.post(STATUS + query, params, token=tenant.auth_token.reveal())

    return post


@pytest.fixture
def post_recording(twilio_webhook, tenant):
    def post(params: dict):
        return twilio_webhook.post(RECORDING, params, token=tenant.auth_token.reveal())

    return post


@pytest.fixture
def call_sid() -> str:
    return random_sid("CA")


@pytest.fixture
def twilio_tenant(tenant, sandbox, sandbox_settings):
    """`tenant` as a subaccount the sandbox knows, the SDK pointed at it; callbacks go nowhere."""
    sandbox.register_account(tenant.account_sid, tenant.auth_token.reveal())
    sandbox_settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    return tenant
