"""Verify models, one module per concern: consent forms and verifications (consent.py),
email through SendGrid (email.py), staff second factor (second_factor.py)."""

from .second_factor import RecoveryCode, RecoveryCodeDevice, SecondFactorThrottle, TotpDevice

__all__ = ["RecoveryCode", "RecoveryCodeDevice", "SecondFactorThrottle", "TotpDevice"]
