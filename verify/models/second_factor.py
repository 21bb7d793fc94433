"""The staff sign-in second factor: an authenticator app (TOTP), codes by text message through the
platform's own Verify service, one-time recovery codes, and the throttle on wrong codes.

The devices are django-otp `Device`s, so `django_otp.middleware.OTPMiddleware` and
`request.user.is_verified()` work as the library documents. The TOTP secret is encrypted at rest
like every other secret here (django-otp's own `TOTPDevice` keeps it in clear text), and recovery
codes are kept only as keyed hashes (`otp_static` keeps them in clear text): that is why these are
our models and not the library's plugins.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django_otp.models import Device, TimestampMixin
from django_otp.oath import TOTP

from tenants.crypto import EncryptedTextField

TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6
# One step either side: clocks drift and people type slowly; RFC 6238 recommends at most one.
TOTP_TOLERANCE_STEPS = 1


class TotpDevice(TimestampMixin, Device):
    """An authenticator app holding a shared secret (RFC 6238: SHA-1, 6 digits, 30 s).

    `last_t` is the last time step accepted: a code is never accepted twice (no replay), nor an
    older one. Unconfirmed devices are enrolments in progress.
    """

    key = EncryptedTextField(help_text="The shared secret, hex (20 random bytes).")
    last_t = models.BigIntegerField(default=-1)

    class Meta:
        verbose_name = "authenticator app"
        ordering = ["user_id", "id"]

    def is_interactive(self) -> bool:
        return False

    def verify_token(self, token) -> bool:
        token = str(token).strip().replace(" ", "")
        if not (token.isdigit() and len(token) == TOTP_DIGITS):
            return False
        totp = TOTP(bytes.fromhex(self.key.reveal()), step=TOTP_STEP_SECONDS, digits=TOTP_DIGITS)
        totp.time = time.time()
        if not totp.verify(int(token), tolerance=TOTP_TOLERANCE_STEPS, min_t=self.last_t + 1):
            return False
        self.last_t = totp.t()
        self.last_used_at = timezone.now()
        self.save(update_fields=["last_t", "last_used_at"])
        return True


def recovery_code_hash(code: str, *, secret: str | None = None) -> str:
    """The keyed hash a recovery code is stored as (HMAC-SHA256 under SECRET_KEY). Codes carry
    60 random bits, so a fast keyed hash is enough and a slow password hash would only make ten
    of them slow to check."""
    normalized = code.strip().replace("-", "").replace(" ", "").lower()
    return salted_hmac("commsportal.recovery-code", normalized, secret=secret, algorithm="sha256").hexdigest()


def recovery_code_hashes(code: str) -> list[str]:
    """The code's hash under the current key and each of `SECRET_KEY_FALLBACKS`, so rotating the
    key does not void codes already handed out."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [recovery_code_hash(code, secret=key) for key in keys]


class RecoveryCodeDevice(TimestampMixin, Device):
    """A user's set of one-time recovery codes (one device per user; regenerating replaces the
    codes). Each code is accepted once."""

    class Meta:
        verbose_name = "recovery codes"
        ordering = ["user_id", "id"]

    def is_interactive(self) -> bool:
        return False

    def verify_token(self, token) -> bool:
        # A conditional update, so two requests racing with one code cannot both win.
        used = self.codes.filter(code_hash__in=recovery_code_hashes(str(token)), used_at__isnull=True).update(
            used_at=timezone.now()
        )
        if used:
            self.last_used_at = timezone.now()
            self.save(update_fields=["last_used_at"])
        return bool(used)


class SmsDevice(TimestampMixin, Device):
    """Codes by text message to the user's phone, sent and checked through the platform's own
    Twilio account and Verify service (`verify.codes` with tenant=None, with its breaker and its
    Programmable Messaging fallback while Verify is down). `verification` is the pending code of
    the last send; the check goes through `verify.second_factor.services` (`code_check`), never
    from the model, so the model layer never calls Twilio."""

    number = models.CharField(max_length=16, help_text="E.164.")
    verification = models.ForeignKey(
        "verify.StaffVerification", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "text message codes"
        ordering = ["user_id", "id"]

    def is_interactive(self) -> bool:
        return True


class RecoveryCode(models.Model):
    """One recovery code, stored only as its keyed hash; `used_at` is set when it is spent."""

    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "recovery code"
        ordering = ["device_id", "id"]
        constraints = [models.UniqueConstraint(fields=["device", "code_hash"], name="recovery_code_unique_per_device")]

    def __str__(self) -> str:
        return f"recovery code #{self.pk} ({'used' if self.used_at else 'unused'})"


class SecondFactorThrottle(models.Model):
    """Wrong second-factor codes for one (account, client address), as django-axes counts wrong
    passwords: at the limit the pair is refused until the cool-off has passed since the last
    failure, or the operator unlocks it (`manage.py second_factor_unlock`)."""

    username = models.CharField(max_length=150)
    # The address as `tenants.http.client_ip` finds it; "" when there is none (never NULL, so the
    # pair stays unique on every database).
    ip_address = models.CharField(max_length=45, blank=True, default="")
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField()

    class Meta:
        verbose_name = "second-factor throttle"
        ordering = ["-last_failure_at"]
        constraints = [
            models.UniqueConstraint(fields=["username", "ip_address"], name="second_factor_throttle_unique_pair")
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip_address or 'unknown'}: {self.failures} wrong code(s)"
