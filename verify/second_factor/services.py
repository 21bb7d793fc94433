"""Enrolling, using and removing a user's second factor. Every change is audited (no tenant:
it is the platform account's own security), and recovery codes leave this module only once, as
the return value of the call that made them."""

from __future__ import annotations

import base64
import functools
import io
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

import qrcode
import qrcode.image.svg
from django.db import connection, transaction
from django_otp.models import Device

from tenants.audit import AuditContext
from tenants.models import SUPPORT_GROUP, is_support, is_support_known, is_support_sql
from tenants.phones import phone_mask
from tenants.services import audit_record
from verify.codes import CodeSent, code_check, code_send
from verify.models import RecoveryCode, RecoveryCodeDevice, SmsDevice, TotpDevice
from verify.models.second_factor import TOTP_DIGITS, TOTP_STEP_SECONDS, recovery_code_hash

from .throttle import code_failure_record, code_failures_clear, code_lock_ends_at

ISSUER = "commsportal"
RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: codes are read off paper. 31 symbols, 12 of them: about 59 random bits.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
DEVICE_MODELS: tuple[type[Device], ...] = (TotpDevice, SmsDevice, RecoveryCodeDevice)
PURPOSE = "second_factor"  # the label on the platform's verifications


class SecondFactorRefused(Exception):
    """A change the policy does not allow (e.g. staff turning their second factor off)."""


def second_factor_required(user) -> bool:
    """Superusers and support staff must use a second factor; everyone else may opt in."""
    return bool(user.is_authenticated and (user.is_superuser or is_support(user)))


def second_factor_devices(*, user) -> list[Device]:
    """The user's confirmed devices, the authenticator app first."""
    return [device for model in DEVICE_MODELS for device in model.objects.devices_for_user(user, confirmed=True)]


@functools.cache
def _has_device_sql() -> str:
    devices = " OR ".join(
        f"EXISTS (SELECT 1 FROM {model._meta.db_table} WHERE user_id = %s AND confirmed)" for model in DEVICE_MODELS
    )
    return f"SELECT ({devices}), {is_support_sql()}"


def second_factor_has_device(*, user) -> bool:
    """Whether the user has any confirmed device. Every page of a signed-in user not yet verified
    asks, so it is one query of plain SQL, which also answers `is_support` (asked next, and by
    the page's navigation): the ORM's building of the same was most of its cost."""
    with connection.cursor() as cursor:
        cursor.execute(_has_device_sql(), [user.pk] * len(DEVICE_MODELS) + [user.pk, SUPPORT_GROUP])
        has_device, support = cursor.fetchone()
    is_support_known(user, support)
    return bool(has_device)


def second_factor_enabled(*, user) -> bool:
    """Whether the user has an authenticator app or codes by text message (recovery codes alone
    are not a second factor they can turn on)."""
    return (
        TotpDevice.objects.filter(user=user, confirmed=True).exists()
        or SmsDevice.objects.filter(user=user, confirmed=True).exists()
    )


def sms_device_of(*, user, confirmed: bool = True) -> SmsDevice | None:
    """The user's text-message device (the one being enrolled, with confirmed=False)."""
    return SmsDevice.objects.filter(user=user, confirmed=confirmed).first()


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
    return device, _enrolment_complete(device, audit=audit, details={"method": "totp"})


def _enrolment_complete(device: TotpDevice | SmsDevice, *, audit: AuditContext, details: dict) -> list[str]:
    """The confirmed device replaces the user's earlier one of its kind; fresh recovery codes
    (returned); audited."""
    replaced = type(device).objects.filter(user=device.user, confirmed=True).exclude(pk=device.pk).delete()[0]
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = _recovery_codes_replace(user=device.user)
    audit_record(
        action="second_factor.enrolled",
        tenant=None,
        audit=audit,
        target=device.user.get_username(),
        details={**details, "replaced": bool(replaced), "recovery_codes": len(codes)},
    )
    return codes


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
        raise SecondFactorRefused("Turn on the second factor first.")
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


def sms_code_send(*, device: SmsDevice, audit: AuditContext) -> CodeSent:
    """Text a code to the device's number through the platform's Verify service (or, while it is
    down, the portal's own code by Programmable Messaging). Raises `verify.codes.CodeError`
    (limits between sends, Verify refusing the number, nothing able to send)."""
    pending = device.verification_id
    sent = code_send(tenant=None, to=device.number, purpose=PURPOSE, client_ip=audit.ip, verification_id=pending)
    device.verification_id = sent.id
    device.save(update_fields=["verification"])
    return sent


def _sms_code_accepts(device: SmsDevice, code: str) -> bool:
    """Check a code against the device's pending verification (one of its 5 checks)."""
    code = code.strip()
    if device.verification_id is None or not (code.isdigit() and len(code) == TOTP_DIGITS):
        return False
    check = code_check(tenant=None, verification_id=device.verification_id, code=code)
    if check.approved:
        device.verification, device.last_used_at = None, check.verification.updated_at
        device.save(update_fields=["verification", "last_used_at"])
    elif check.status != "pending":  # expired, used up or canceled: a new code must be sent
        device.verification = None
        device.save(update_fields=["verification"])
    return check.approved


def _accepts(device: Device, code: str) -> bool:
    if isinstance(device, SmsDevice):
        return _sms_code_accepts(device, code)
    return device.verify_token(code)


def sms_enrolment_start(*, user, number: str, audit: AuditContext) -> SmsDevice:
    """Start enrolling `number` (E.164) for codes by text message, and text it a code to
    confirm. Raises `verify.codes.CodeError` when no code could be sent."""
    device = sms_device_of(user=user, confirmed=False)
    if device is None or device.number != number:
        SmsDevice.objects.filter(user=user, confirmed=False).delete()
        device = SmsDevice.objects.create(user=user, name="Text messages", number=number, confirmed=False)
    sms_code_send(device=device, audit=audit)
    return device


@transaction.atomic
def sms_enrolment_confirm(*, device: SmsDevice, code: str, audit: AuditContext) -> tuple[SmsDevice, list[str]] | None:
    """Confirm the number with the code texted to it; it replaces an earlier number, and the
    user gets fresh recovery codes (returned with the device, to be shown once); None when the
    code is wrong."""
    if not _sms_code_accepts(device, code):
        return None
    return device, _enrolment_complete(
        device, audit=audit, details={"method": "sms", "number": phone_mask(device.number)}
    )


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
        device = next((d for d in second_factor_devices(user=user) if _accepts(d, code)), None)
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
