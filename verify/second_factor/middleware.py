"""No page before the second factor: a signed-in user with a device who has not entered a code
this session is sent to the code page, and superusers and support staff without one are sent to
enrol, whatever they asked for (the Django admin included).

Left alone: anonymous requests (LoginRequiredMiddleware handles them), Twilio's and SendGrid's
webhooks, the public consent pages (/c/), /healthz, static files, sign-in and sign-out, and the
second-factor pages themselves. Runs after django-otp's OTPMiddleware, which tells whether this
session's user has been verified by one of their devices.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponseRedirect
from django.urls import reverse

from .services import second_factor_has_device, second_factor_required

ALWAYS_OPEN = ("/webhooks/", "/c/", "/healthz", "/accounts/login/", "/accounts/logout/")


def second_factor_pending(user) -> str | None:
    """What this signed-in user still owes before any page: "verify" (enter a code), "enrol"
    (staff without a device), or None."""
    if not user.is_authenticated or user.is_verified():
        return None
    if second_factor_has_device(user=user):
        return "verify"
    return "enrol" if second_factor_required(user) else None


class SecondFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if path.startswith(ALWAYS_OPEN) or path.startswith(settings.STATIC_URL):
            return self.get_response(request)
        step = second_factor_pending(request.user)
        if step is None:
            return self.get_response(request)
        page = reverse("second_factor:verify" if step == "verify" else "second_factor:enrol")
        if path.startswith(page):  # the step's own pages (e.g. enrol/sms/, verify/send/)
            return self.get_response(request)
        return HttpResponseRedirect(f"{page}?{urlencode({'next': request.get_full_path()})}")
