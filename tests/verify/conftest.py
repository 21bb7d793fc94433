"""Fixtures for the Verify tests: a tenant the sandbox knows (with an SMS sender for fallback
codes), Celery inline, and helpers to read what the sandbox sent."""

from __future__ import annotations

import pytest

from sandbox.state import MAGIC_FROM
from tests.tenants.factories import PhoneNumberFactory


@pytest.fixture
def celery_eager():
    from commsportal.celery import app

    saved = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = False
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def verify_tenant(tenant, sandbox, sandbox_settings, celery_eager):
    """`tenant` as a subaccount of the sandbox, owning the sandbox's always-accepted sender."""
    sandbox.register_account(tenant.account_sid, tenant.auth_token.reveal())
    sandbox_settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # status callbacks go nowhere
    sandbox_settings.TWILIO_HTTP_TIMEOUT = 1.0
    PhoneNumberFactory(tenant=tenant, phone_number=MAGIC_FROM)
    return tenant
