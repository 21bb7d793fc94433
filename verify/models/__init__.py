"""Verify models, one module per concern: consent forms and verifications (consent.py),
email through SendGrid (email.py), staff second factor (second_factor.py)."""

from .email import EmailEvent, EmailMessage, EmailProviderProblem, EmailSuppression

__all__ = ["EmailEvent", "EmailMessage", "EmailProviderProblem", "EmailSuppression"]
