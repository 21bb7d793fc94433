"""One-time codes for the portal: Twilio Verify V2 with a circuit breaker and the portal's own
fallback codes. Everything that sends or checks a code (the public consent forms, the staff
second factor) goes through the two functions below.

API
---
``code_send(*, tenant, to, purpose, channel="sms", client_ip=None, verification_id=None,
fields=None) -> CodeSent``
    Sends a code to ``to`` (E.164, or an email address with channel ``email``). ``tenant=None``
    means the platform: its parent account (TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN) and Verify
    service (VERIFY_PLATFORM_SERVICE_SID, or one created through the API and remembered); a
    tenant uses its subaccount and its Verify service (created when missing, SID stored on the
    tenant). ``channel`` is ``sms``, ``call`` or ``email``. ``verification_id`` resends within
    that pending verification (same or another channel). ``purpose`` is a short label stored
    on the verification (``consent``, ``second_factor``); ``fields`` extra columns of a tenant
    verification (form, form_version, phone). Returns ``CodeSent(verification, fallback)``;
    ``.id`` is the handle for ``code_check``.

``code_check(*, tenant, verification_id, code) -> CodeCheck``
    ``CodeCheck(verification, approved, status, attempts_left, unavailable)``. ``status`` is the
    verification's: pending (wrong code, try again), approved, max_attempts_reached, expired,
    canceled, failed. ``unavailable`` means Verify could not be asked (it is down) and nothing
    was decided or counted: send a new code (it will be a fallback one).

Both raise ``CodeError(kind, message)``: ``limited`` (``reason`` ``interval``/``hourly``,
``retry_after`` seconds), ``refused`` (Verify answered 4xx; ``twilio_code`` 60200, 60203,
60212, 20429 …), ``unavailable`` (Verify down and no fallback for this channel), ``invalid``.

Limits (per number/address AND per client IP, from the send log): >= 60 s between sends,
<= 5 sends an hour; <= 5 checks per verification. Codes expire after
MESSAGING_OTP_VALIDITY_SECONDS (600 s: Verify's default too).

Breaker (per scope and channel, `breaker.py`): a 5xx, a timeout or a refused connection from
Verify opens it (4xx never does). While open, codes are the portal's own: 6 digits, stored only
as a keyed HMAC (`salted_hmac`, SECRET_KEY), sent by SMS through Programmable Messaging (a
tenant's via messaging's send path, purpose ``otp``; the platform's from
VERIFY_PLATFORM_SMS_SENDER), same expiry and check limit, ``fallback=True`` on the
verification. After VERIFY_BREAKER_COOLDOWN_SECONDS one request probes Verify (half-open):
success closes the breaker, failure reopens it. A send is made through one path only:
the failed Verify request or the fallback SMS, never both from the portal's side.
"""

from .breaker import Scope
from .limits import MAX_CHECKS, MAX_SENDS_PER_WINDOW, MIN_SEND_INTERVAL
from .services import CodeCheck, CodeError, CodeSent, code_check, code_send

__all__ = [
    "MAX_CHECKS",
    "MAX_SENDS_PER_WINDOW",
    "MIN_SEND_INTERVAL",
    "CodeCheck",
    "CodeError",
    "CodeSent",
    "Scope",
    "code_check",
    "code_send",
]
