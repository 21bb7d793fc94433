"""Helpers reading what the sandbox sent."""

from __future__ import annotations

from datetime import timedelta

import requests
from django.db.models import F

from verify.models import VerificationSend


def verify_codes(sandbox, to: str) -> list[dict]:
    """Codes the sandbox's Verify issued to `to`, newest first."""
    response = requests.get(f"{sandbox.base_url}/sandbox/verify-codes", params={"to": to}, timeout=5)
    response.raise_for_status()
    return response.json()


def sms_to(sandbox, to: str) -> list[dict]:
    """Messages the sandbox holds for `to`, newest first."""
    response = requests.get(f"{sandbox.base_url}/sandbox/messages", params={"to": to}, timeout=5)
    response.raise_for_status()
    return response.json()


def add_fault(sandbox, **fields) -> None:
    response = requests.post(f"{sandbox.base_url}/sandbox/faults", json=fields, timeout=5)
    response.raise_for_status()


def time_passes(tenant, seconds: int) -> None:
    """Every code send of `tenant` happened `seconds` earlier (the abuse limits count from the
    send log, so moving it stands in for waiting)."""
    VerificationSend.objects.for_tenant(tenant).update(sent_at=F("sent_at") - timedelta(seconds=seconds))
