"""Seeds the browser suite's stack: run as `python -m tests.browser.seed` in the stack's
environment (tests/stack.py), before the tests start. Prints JSON: the tenants' account SIDs and
the ids of the messages it sent, and the authenticator-app keys enrolled for the staff logins
(support staff must pass a second factor; the operator's is enrolled by tests/stack.py). Also one
staff-recorded consent.

The tenants get their subaccounts at the sandbox (`create_tenant --create-subaccount`), as an
operator would; their numbers exist at the sandbox with the portal's webhooks and reach the
portal by the same sync the worker runs; the outbound messages go through the portal's own send
service, so the worker delivers them and the sandbox calls back, signed.
"""

from __future__ import annotations

import io
import json

import django

django.setup()

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from messaging.delivery.queueing import message_send  # noqa: E402
from messaging.ledgers.services import consent_record  # noqa: E402
from tenants.audit import SYSTEM  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.numbers import numbers_sync_all, webhook_urls  # noqa: E402
from tests.browser.portal import CONSENTED, OUR_NUMBERS, OUTBOUND, TENANT_A, TENANT_NAMES, USERS  # noqa: E402
from verify.second_factor.services import totp_device_provision  # noqa: E402


def main() -> None:
    quiet = io.StringIO()  # stdout carries only the JSON
    for slug, name in TENANT_NAMES.items():
        call_command(
            "create_tenant", slug, "--name", name, "--create-subaccount", "--timezone", "America/New_York", stdout=quiet
        )
    for username, options in USERS.values():
        if options is not None:
            call_command("create_portal_user", username, "--password", "env:PORTAL_PASSWORD", *options, stdout=quiet)
    support = get_user_model().objects.get(username=USERS["support"][0])
    totp_secrets = {support.username: totp_device_provision(user=support, audit=SYSTEM)[0]}
    accounts = {t.slug: t.account_sid for t in Tenant.objects.all()}
    hooks = webhook_urls()
    for slug, number in OUR_NUMBERS.items():
        seeded = requests.post(
            f"{settings.TWILIO_API_BASE_URL}/sandbox/accounts/{accounts[slug]}/numbers",
            data={
                "PhoneNumber": number,
                "SmsUrl": hooks["sms_url"],
                "VoiceUrl": hooks["voice_url"],
                "StatusCallback": hooks["status_callback"],
            },
            timeout=10,
        )
        seeded.raise_for_status()
    numbers_sync_all()
    tenant, admin = Tenant.objects.get(slug=TENANT_A), get_user_model().objects.get(username=USERS["admin"][0])
    sent = {
        to: message_send(
            tenant=tenant,
            to=to,
            body=f"Your appointment is confirmed ({to[-4:]}).",
            purpose="transactional",
            sender=OUR_NUMBERS[TENANT_A],
            created_by=admin,
        ).pk
        for to in OUTBOUND
    }
    consent_record(
        tenant=tenant,
        phone=CONSENTED,
        purpose="transactional",
        action="granted",
        method="paper",
        source="Clinic A intake form",
        captured_by=admin,
    )
    print(json.dumps({"accounts": accounts, "messages": sent, "totp_secrets": totp_secrets}))


if __name__ == "__main__":
    main()
