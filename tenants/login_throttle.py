"""Sign-in throttling by (account, client address), on django-axes (settings: `AXES_*`).

Axes counts wrong passwords per username and address and refuses the pair once the limit is
reached; this module adds what the portal needs around it: the backend that guards the sign-in
form, when a lock lifts, and the page that says so.
"""

from __future__ import annotations

from datetime import datetime

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.db.models import Max
from django.shortcuts import render
from django.utils import timezone


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuses a locked (account, address) pair before any password is checked.

    Throttling is by the caller's address, which only an HTTP request has: a call without one
    (the test client's `login()`, a shell) has no address to throttle by and passes through to
    the next backend, where axes' own backend would raise.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def login_lockout_ends_at(*, username: str | None, ip_address: str | None) -> datetime | None:
    """When the lock on this pair lifts: the cool-off counted from the last failure axes recorded
    (failures while locked are not recorded, so the time does not move); None when no failure is
    on record (e.g. the operator has just unlocked it)."""
    last = AccessAttempt.objects.filter(username=username, ip_address=ip_address).aggregate(last=Max("attempt_time"))[
        "last"
    ]
    cool_off = get_cool_off()
    if last is None or cool_off is None:
        return None
    return last + cool_off


def lockout_page(request, original_response=None, credentials=None):
    """The page a refused sign-in gets (AXES_LOCKOUT_CALLABLE), in the portal's layout, 429."""
    username = get_client_username(request, credentials) or ""
    retry_at = login_lockout_ends_at(username=username, ip_address=getattr(request, "axes_ip_address", None))
    cool_off = get_cool_off(request)
    if retry_at is None and cool_off is not None:
        retry_at = timezone.now() + cool_off
    minutes_left = max(1, round((retry_at - timezone.now()).total_seconds() / 60)) if retry_at else None
    context = {"locked_username": username, "retry_at": retry_at, "minutes_left": minutes_left}
    return render(request, "registration/locked_out.html", context, status=429)
