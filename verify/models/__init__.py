"""Verify models, one module per concern: consent forms and verifications (consent.py),
email through SendGrid (email.py), staff second factor (second_factor.py)."""

from .codes import (
    Channel,
    PlatformVerifyService,
    StaffVerification,
    StaffVerificationSend,
    Verification,
    VerificationSend,
    VerificationStatus,
    VerifyBreaker,
)
from .consent import ConsentForm, ConsentFormVersion
from .email import EmailEvent, EmailMessage, EmailProviderProblem, EmailSuppression
from .second_factor import RecoveryCode, RecoveryCodeDevice, SecondFactorThrottle, SmsDevice, TotpDevice

__all__ = [
    "Channel",
    "ConsentForm",
    "ConsentFormVersion",
    "EmailEvent",
    "EmailMessage",
    "EmailProviderProblem",
    "EmailSuppression",
    "PlatformVerifyService",
    "RecoveryCode",
    "RecoveryCodeDevice",
    "SecondFactorThrottle",
    "SmsDevice",
    "StaffVerification",
    "StaffVerificationSend",
    "TotpDevice",
    "Verification",
    "VerificationSend",
    "VerificationStatus",
    "VerifyBreaker",
]
