"""Fixtures for the gate and delivery tests (helpers and numbers: sending_support.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def celery_eager():
    """Run tasks inline for the duration of a test: a retry runs again at once (countdowns are
    ignored) and `.get()` returns the final attempt's value or raises its exception."""
    from commsportal.celery import app

    saved = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = False  # True would raise celery's Retry out of the first try
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def twilio_tenant(tenant, sandbox, sandbox_settings):
    """The `tenant` fixture as a subaccount the sandbox knows, with the SDK pointed at it.

    Status callbacks go to a closed port unless a test points PUBLIC_BASE_URL at a live server.
    """
    sandbox.register_account(tenant.account_sid, tenant.auth_token.reveal())
    sandbox_settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    return tenant
