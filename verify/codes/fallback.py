"""The portal's own one-time codes, used while a Verify breaker is open: generated here,
stored only as a keyed HMAC (a key derived from SECRET_KEY through Django's `salted_hmac`,
bound to the verification), and sent by Programmable Messaging: a tenant's through messaging's
send path (compliance gate, purpose ``otp`` with its validity deadline, leased delivery that
never sends twice), the platform's through its parent account with VERIFY_PLATFORM_SMS_SENDER.
"""

from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from messaging.delivery.queueing import message_send
from messaging.log import sender_numbers_list
from messaging.models import Message, Purpose
from tenants.models import Tenant
from tenants.twilio import TwilioError, parent_client, twilio_errors

CODE_LENGTH = 6
HMAC_SALT = "verify.codes.fallback"
#: What a fallback message's stored body becomes once its verification is over.
REDACTED = "[verification code redacted]"


class FallbackUnavailable(Exception):
    """No way to send the portal's own code (no sender configured)."""


def code_generate() -> str:
    return "".join(secrets.choice(string.digits) for _ in range(CODE_LENGTH))


def code_hmac(*, verification_key: str, code: str) -> str:
    """Keyed HMAC-SHA256 of `code` for one verification: useless without SECRET_KEY, and a
    code from one verification never matches another."""
    return salted_hmac(HMAC_SALT, f"{verification_key}:{code}", algorithm="sha256").hexdigest()


def code_matches(*, verification_key: str, code: str, stored: str) -> bool:
    return bool(stored) and constant_time_compare(code_hmac(verification_key=verification_key, code=code), stored)


def code_body(*, brand: str, code: str) -> str:
    minutes = settings.MESSAGING_OTP_VALIDITY_SECONDS // 60
    return f"{brand}: your verification code is {code}. It expires in {minutes} minutes. Never share it."


def tenant_sms_sender(tenant: Tenant) -> str:
    """The Messaging Service when set (sent as no From), else the first SMS-capable number."""
    if tenant.messaging_service_sid:
        return ""
    numbers = sender_numbers_list(tenant=tenant)
    if not numbers:
        raise FallbackUnavailable("The tenant has no Messaging Service and no SMS-capable number.")
    return numbers[0][0]


def fallback_send_tenant(*, tenant: Tenant, to: str, code: str) -> Message:
    """Queue the code by SMS through messaging's send path (purpose otp); returns the row
    (blocked when the gate says never, e.g. the number opted out)."""
    return message_send(
        tenant=tenant,
        to=to,
        body=code_body(brand=tenant.name, code=code),
        purpose=Purpose.OTP,
        sender=tenant_sms_sender(tenant),
    )


def fallback_send_platform(*, to: str, code: str) -> str:
    """Send the code by SMS from the platform's parent account, once (no retry: a failure is
    reported to the caller); returns the Message SID."""
    sender = settings.VERIFY_PLATFORM_SMS_SENDER
    if not sender:
        raise FallbackUnavailable("VERIFY_PLATFORM_SMS_SENDER is not set.")
    route = {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": sender}
    with twilio_errors():
        message = parent_client().messages.create(to=to, body=code_body(brand="Portal sign-in", code=code), **route)
    return message.sid


def fallback_message_redact(*, tenant: Tenant, message_id: int | None) -> None:
    """Once a verification is over, its code has no use: drop it from the stored SMS body."""
    if message_id:
        Message.objects.for_tenant(tenant).filter(pk=message_id).update(body=REDACTED)


__all__ = [
    "FallbackUnavailable",
    "TwilioError",
    "code_body",
    "code_generate",
    "code_hmac",
    "code_matches",
    "fallback_message_redact",
    "fallback_send_platform",
    "fallback_send_tenant",
    "tenant_sms_sender",
]
