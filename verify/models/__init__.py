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

__all__ = [
    "Channel",
    "ConsentForm",
    "ConsentFormVersion",
    "EmailEvent",
    "EmailMessage",
    "EmailProviderProblem",
    "EmailSuppression",
    "PlatformVerifyService",
    "StaffVerification",
    "StaffVerificationSend",
    "Verification",
    "VerificationSend",
    "VerificationStatus",
    "VerifyBreaker",
]
