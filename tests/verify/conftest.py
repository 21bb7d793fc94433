"""Fixtures for the Verify tests: a tenant the sandbox knows (with an SMS sender for fallback
codes), Celery inline, and helpers to read what the sandbox sent."""

from __future__ import annotations

import pytest

from sandbox.state import MAGIC_FROM
from tenants.audit import SYSTEM
from tests.tenants.factories import PhoneNumberFactory
from verify.consent.admin import consent_form_create


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
