"""Secrets for operator commands: `-` reads stdin, `env:NAME` reads the environment, so a
token need never appear in the process list."""

import os
import sys

from django.core.management.base import CommandError


def read_secret(value: str | None, *, what: str) -> str | None:
    if value is None:
        return None
    if value == "-":
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CommandError(f"Expected the {what} on standard input, got nothing.")
        return line
    if value.startswith("env:"):
        name = value[4:]
        if not os.environ.get(name):
            raise CommandError(f"Environment variable {name} (for the {what}) is not set.")
        return os.environ[name]
    return value
