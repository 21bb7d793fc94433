"""Test helpers for the second factor: codes computed from a secret as an authenticator app
computes them, and a confirmed authenticator app for a user without going through the pages."""

from __future__ import annotations

import base64
import secrets
import time

from django_otp.oath import TOTP

from verify.models import TotpDevice
from verify.models.second_factor import TOTP_DIGITS, TOTP_STEP_SECONDS


def totp_code(secret: str, *, at: float | None = None) -> str:
    """The code an authenticator app shows for `secret` (base32 as shown to people, or hex)."""
    try:
        key = bytes.fromhex(secret)
    except ValueError:
        key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key, step=TOTP_STEP_SECONDS, digits=TOTP_DIGITS)
    totp.time = time.time() if at is None else at
    return f"{totp.token():0{TOTP_DIGITS}d}"


def fresh_totp_code(secret: str, used: set[tuple[str, int]]) -> str:
    """A code of a time step not used yet with `secret` (a code is accepted once): waits for the
    next step when this one was spent. `used` remembers (secret, step) across calls."""
    step = int(time.time()) // TOTP_STEP_SECONDS
    while (secret, step) in used:
        time.sleep(0.5)
        step = int(time.time()) // TOTP_STEP_SECONDS
    used.add((secret, step))
    return totp_code(secret, at=step * TOTP_STEP_SECONDS + 1)


def sign_in_device(user) -> TotpDevice:
    """A confirmed authenticator app with a random secret, as if the user had enrolled."""
    return TotpDevice.objects.create(user=user, name="test authenticator", confirmed=True, key=secrets.token_hex(20))
