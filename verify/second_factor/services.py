"""Enrolling, using and removing a user's second factor. Every change is audited (no tenant:
it is the platform account's own security), and recovery codes leave this module only once, as
the return value of the call that made them."""

from __future__ import annotations

import base64
import io
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

import qrcode
import qrcode.image.svg
from django.db import transaction
from django_otp.models import Device

from tenants.audit import AuditContext
from tenants.models import is_support
from tenants.services import audit_record
from verify.models import RecoveryCode, RecoveryCodeDevice, TotpDevice
from verify.models.second_factor import TOTP_DIGITS, TOTP_STEP_SECONDS, recovery_code_hash

from .throttle import code_failure_record, code_failures_clear, code_lock_ends_at

ISSUER = "commsportal"
RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: codes are read off paper. 31 symbols, 12 of them: about 59 random bits.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
DEVICE_MODELS: tuple[type[Device], ...] = (TotpDevice, RecoveryCodeDevice)


class SecondFactorRefused(Exception):
    """A change the policy does not allow (e.g. staff turning their second factor off)."""


def second_factor_required(user) -> bool:
    """Superusers and support staff must use a second factor; everyone else may opt in."""
    return bool(user.is_authenticated and (user.is_superuser or is_support(user)))


def second_factor_devices(*, user) -> list[Device]:
    """The user's confirmed devices, the authenticator app first."""
    return [device for model in DEVICE_MODELS for device in model.objects.devices_for_user(user, confirmed=True)]


def second_factor_enabled(*, user) -> bool:
    """Whether the user has an authenticator app (recovery codes alone are not a second factor
    they can turn on)."""
    return TotpDevice.objects.filter(user=user, confirmed=True).exists()


def recovery_codes_left(*, user) -> int:
    return RecoveryCode.objects.filter(device__user=user, used_at__isnull=True).count()


def totp_enrolment_start(*, user) -> TotpDevice:
    """The authenticator app being enrolled: the pending one, or a new secret."""
    pending = TotpDevice.objects.filter(user=user, confirmed=False).first()
    if pending is not None:
        return pending
    return TotpDevice.objects.create(user=user, name="Authenticator app", confirmed=False, key=secrets.token_hex(20))


def totp_secret_base32(device: TotpDevice) -> str:
    """The secret as authenticator apps take it when typed in (RFC 4648 base32, no padding)."""
    return base64.b32encode(bytes.fromhex(device.key.reveal())).decode().rstrip("=")


def totp_provisioning_uri(device: TotpDevice) -> str:
    """The `otpauth://` URI an authenticator app reads from the QR code."""
    label = quote(f"{ISSUER}:{device.user.get_username()}")
    query = {
        "secret": totp_secret_base32(device),
        "issuer": ISSUER,
        "algorithm": "SHA1",
        "digits": TOTP_DIGITS,
        "period": TOTP_STEP_SECONDS,
    }
    return f"otpauth://totp/{label}?{urlencode(query)}"


def qr_svg_data_uri(text: str) -> str:
    """`text` as a QR code, an SVG `data:` URI for an <img> (the CSP allows data: images; no
    script, no inline style)."""
    buffer = io.BytesIO()
    qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=2).save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def _recovery_codes_replace(*, user) -> list[str]:
    device, _ = RecoveryCodeDevice.objects.get_or_create(user=user, defaults={"name": "Recovery codes"})
    device.codes.all().delete()
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(RecoveryCode(device=device, code_hash=recovery_code_hash(c)) for c in codes)
    return codes


@transaction.atomic
def totp_enrolment_confirm(
    *, device: TotpDevice, code: str, audit: AuditContext
) -> tuple[TotpDevice, list[str]] | None:
    """Confirm the pending authenticator app with a code it shows. On success it replaces any
    earlier one, and the user gets fresh recovery codes: returns the confirmed device and the
    codes (to be shown once); None when the code is wrong."""
    device = TotpDevice.objects.select_for_update().filter(pk=device.pk, confirmed=False).first()
    if device is None or not device.verify_token(code):
        return None
    replaced = TotpDevice.objects.filter(user=device.user, confirmed=True).exclude(pk=device.pk).delete()[0]
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = _recovery_codes_replace(user=device.user)
    audit_record(
        action="second_factor.enrolled",
        tenant=None,
        audit=audit,
        target=device.user.get_username(),
        details={"method": "totp", "replaced": bool(replaced), "recovery_codes": len(codes)},
    )
    return device, codes


@transaction.atomic
def totp_device_provision(*, user, audit: AuditContext) -> tuple[str, list[str]]:
    """An authenticator app enrolled without the enrolment page, for development seeds (the demo
    prints it so its staff logins can pass the second factor): returns the secret (base32) and
    fresh recovery codes. Keeps a confirmed app the user already has."""
    device = TotpDevice.objects.filter(user=user, confirmed=True).first()
    created = device is None
    if created:
        device = TotpDevice.objects.create(user=user, name="Authenticator app", key=secrets.token_hex(20))
    codes = _recovery_codes_replace(user=user)
    audit_record(
        action="second_factor.enrolled" if created else "second_factor.recovery_codes_regenerated",
        tenant=None,
        audit=audit,
        target=user.get_username(),
        details={"method": "totp", "provisioned": True, "recovery_codes": len(codes)},
    )
    return totp_secret_base32(device), codes


@transaction.atomic
def recovery_codes_regenerate(*, user, audit: AuditContext) -> list[str]:
    """New recovery codes for a user with an authenticator app; every earlier code stops working."""
    if not second_factor_enabled(user=user):
        raise SecondFactorRefused("Turn on the authenticator app first.")
    codes = _recovery_codes_replace(user=user)
    audit_record(
        action="second_factor.recovery_codes_regenerated",
        tenant=None,
        audit=audit,
        target=user.get_username(),
        details={"recovery_codes": len(codes)},
    )
    return codes


@transaction.atomic
def second_factor_disable(*, user, audit: AuditContext, by_operator: bool = False) -> int:
    """Remove every device of the user. Staff who must have a second factor cannot turn theirs
    off (they replace it by enrolling again); the operator may reset anyone's, e.g. after a lost
    phone, and they enrol again at their next sign-in. Returns how many devices went."""
    if second_factor_required(user) and not by_operator:
        raise SecondFactorRefused("Superusers and support staff must keep a second factor.")
    removed = sum(model.objects.filter(user=user).delete()[1].get(model._meta.label, 0) for model in DEVICE_MODELS)
    if removed:
        audit_record(
            action="second_factor.disabled",
            tenant=None,
            audit=audit,
            target=user.get_username(),
            details={"by_operator": by_operator},
        )
    return removed


@dataclass(frozen=True)
class CodeCheck:
    """What a submitted code did: the device that accepted it, or when the lock ends."""

    device: Device | None = None
    locked_until: datetime | None = None


def second_factor_verify(*, user, code: str, audit: AuditContext) -> CodeCheck:
    """Check a code against the user's devices, throttled per (account, address). A recovery code
    is spent by its use, and that is audited."""
    username = user.get_username()
    locked_until = code_lock_ends_at(username=username, ip_address=audit.ip)
    if locked_until is not None:
        return CodeCheck(locked_until=locked_until)
    with transaction.atomic():
        device = next((d for d in second_factor_devices(user=user) if d.verify_token(code)), None)
        if isinstance(device, RecoveryCodeDevice):
            audit_record(
                action="second_factor.recovery_code_used",
                tenant=None,
                audit=audit,
                target=username,
                details={"left": recovery_codes_left(user=user)},
            )
    if device is None:
        return CodeCheck(locked_until=code_failure_record(username=username, ip_address=audit.ip))
    code_failures_clear(username=username, ip_address=audit.ip)
    return CodeCheck(device=device)
