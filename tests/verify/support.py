"""Helpers reading what the sandbox sent."""

from __future__ import annotations

import requests


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
