"""The second-factor pages under /accounts/second-factor/: the code step after the password,
enrolling an authenticator app (with its recovery codes, shown once), and the user's own
settings. The enforcement is in `middleware.py`."""

from __future__ import annotations

from urllib.parse import urlencode

import django_otp
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from tenants.http import audit_context, client_ip
from tenants.phones import phone_mask
from verify.codes import CodeError
from verify.models import RecoveryCodeDevice

from .forms import CodeForm, EnrolForm, PhoneForm
from .middleware import second_factor_pending
from .services import (
    SecondFactorRefused,
    qr_svg_data_uri,
    recovery_codes_left,
    recovery_codes_regenerate,
    second_factor_disable,
    second_factor_enabled,
    second_factor_required,
    second_factor_verify,
    sms_code_send,
    sms_device_of,
    sms_enrolment_confirm,
    sms_enrolment_start,
    totp_enrolment_confirm,
    totp_enrolment_start,
    totp_provisioning_uri,
    totp_secret_base32,
)
from .throttle import code_lock_ends_at


def _next_url(request) -> str:
    """Where to go once the code is in: `next` when it is ours, else the home page."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("home")


def _signed_in_with(request, device) -> None:
    """Mark this session as verified by `device`, under a new session key (the session's
    privileges changed)."""
    request.session.cycle_key()
    django_otp.login(request, device)


@require_http_methods(["GET", "POST"])
def verify(request):
    """The code step after the password. Wrong codes count against (account, address)."""
    step = second_factor_pending(request.user)
    if step != "verify":
        if step is None:
            return redirect(_next_url(request))
        return redirect(reverse("second_factor:enrol") + "?" + urlencode({"next": _next_url(request)}))
    form = CodeForm(request.POST or None)
    locked_until, status = None, 200
    if request.method == "GET":  # say so at once when this pair is already locked
        locked_until = code_lock_ends_at(username=request.user.get_username(), ip_address=client_ip(request))
    if form.is_valid():
        check = second_factor_verify(user=request.user, code=form.cleaned_data["code"], audit=audit_context(request))
        if check.device is not None:
            _signed_in_with(request, check.device)
            if isinstance(check.device, RecoveryCodeDevice):
                left = recovery_codes_left(user=request.user)
                messages.warning(
                    request, f"You signed in with a recovery code; {left} left. Make new ones in Sign-in security."
                )
            return redirect(_next_url(request))
        locked_until = check.locked_until
        if locked_until is None:
            form.add_error("code", "That code is not right (or was already used). Try again.")
    if locked_until is not None:
        status = 429
    minutes_left = max(1, round((locked_until - timezone.now()).total_seconds() / 60)) if locked_until else None
    sms = sms_device_of(user=request.user)
    context = {
        "form": form,
        "next": _next_url(request),
        "locked_until": locked_until,
        "minutes_left": minutes_left,
        "sms_number": phone_mask(sms.number) if sms else "",
    }
    return render(request, "verify/second_factor/verify.html", context, status=status)


def _code_error_text(error: CodeError) -> str:
    if error.kind == "limited" and error.reason == "hourly":
        minutes = max(1, round(error.retry_after / 60))
        return (
            f"Too many codes this hour: wait {minutes} minute{'s' if minutes != 1 else ''} before asking for another."
        )
    if error.kind == "limited":
        return f"A code was sent a moment ago: wait {error.retry_after} seconds before asking for another."
    return error.message or "The code could not be sent. Try again shortly."


@require_POST
def verify_send(request):
    """Text a code to the user's number (the verify page's "Text me a code")."""
    target = reverse("second_factor:verify") + "?" + urlencode({"next": _next_url(request)})
    device = sms_device_of(user=request.user)
    if device is None or second_factor_pending(request.user) != "verify":
        return redirect(target)
    try:
        sms_code_send(device=device, audit=audit_context(request))
    except CodeError as error:
        messages.error(request, _code_error_text(error))
    else:
        messages.info(request, f"We texted a code to {phone_mask(device.number)}. It is valid for 10 minutes.")
    return redirect(target)


@require_http_methods(["GET", "POST"])
def enrol(request):
    """Add an authenticator app: scan the QR code (or type the secret), confirm with a code. On
    success the session is verified by it and the recovery codes are shown, once."""
    device = totp_enrolment_start(user=request.user)
    form = EnrolForm(request.POST or None)
    if form.is_valid():
        confirmed = totp_enrolment_confirm(device=device, code=form.cleaned_data["code"], audit=audit_context(request))
        if confirmed is not None:
            device, codes = confirmed
            _signed_in_with(request, device)
            return render(
                request,
                "verify/second_factor/recovery_codes.html",
                {"codes": codes, "next": _next_url(request), "enrolled": True},
            )
        form.add_error("code", "That code does not match: check the app's clock and try the newest code.")
    context = {
        "form": form,
        "next": _next_url(request),
        "secret": totp_secret_base32(device),
        "qr": qr_svg_data_uri(totp_provisioning_uri(device)),
        "required": second_factor_required(request.user),
        "replacing": second_factor_enabled(user=request.user),
    }
    return render(request, "verify/second_factor/enrol.html", context)


@require_http_methods(["GET", "POST"])
def enrol_sms(request):
    """Codes by text message instead of an app: the number, then the code texted to it. On
    success the session is verified by it and the recovery codes are shown, once."""
    context = {"next": _next_url(request), "required": second_factor_required(request.user)}
    context["replacing"] = second_factor_enabled(user=request.user)
    pending = sms_device_of(user=request.user, confirmed=False)
    if "code" in request.POST and pending is not None:
        form = EnrolForm(request.POST)
        if form.is_valid():
            confirmed = sms_enrolment_confirm(
                device=pending, code=form.cleaned_data["code"], audit=audit_context(request)
            )
            if confirmed is not None:
                device, codes = confirmed
                _signed_in_with(request, device)
                context.update(codes=codes, enrolled=True)
                return render(request, "verify/second_factor/recovery_codes.html", context)
            form.add_error("code", "That code does not match the one we texted. Try again, or send a new one.")
        context.update(form=form, number=phone_mask(pending.number))
        return render(request, "verify/second_factor/enrol_sms.html", context)
    phone_form = PhoneForm(request.POST if "number" in request.POST else None)
    if phone_form.is_valid():
        try:
            device = sms_enrolment_start(
                user=request.user, number=phone_form.cleaned_data["number"], audit=audit_context(request)
            )
        except CodeError as error:
            phone_form.add_error("number", _code_error_text(error))
        else:
            context.update(form=EnrolForm(), number=phone_mask(device.number))
            return render(request, "verify/second_factor/enrol_sms.html", context)
    context["phone_form"] = phone_form
    return render(request, "verify/second_factor/enrol_sms.html", context)


def manage(request):
    """The user's own sign-in security: whether the second factor is on, codes left, and the
    changes they may make."""
    sms = sms_device_of(user=request.user)
    context = {
        "enabled": second_factor_enabled(user=request.user),
        "required": second_factor_required(request.user),
        "codes_left": recovery_codes_left(user=request.user),
        "sms_number": phone_mask(sms.number) if sms else "",
    }
    return render(request, "verify/second_factor/manage.html", context)


@require_POST
def recovery_codes(request):
    """New recovery codes (every earlier one stops working), shown once."""
    try:
        codes = recovery_codes_regenerate(user=request.user, audit=audit_context(request))
    except SecondFactorRefused as refused:
        messages.error(request, str(refused))
        return redirect("second_factor:manage")
    return render(
        request, "verify/second_factor/recovery_codes.html", {"codes": codes, "next": reverse("second_factor:manage")}
    )


@require_POST
def disable(request):
    """Turn the second factor off (tenant users who opted in; staff must keep theirs)."""
    try:
        second_factor_disable(user=request.user, audit=audit_context(request))
    except SecondFactorRefused as refused:
        messages.error(request, str(refused))
        return redirect("second_factor:manage")
    messages.success(request, "The second factor is off: signing in needs only your password.")
    return redirect("second_factor:manage")
