"""The public consent page `/c/<tenant-slug>/<form-slug>/`: no login (the person is not a
portal user), CSRF on, a honeypot field, the flow's state in the session.

Steps: number (+ optional email) and the ticked disclosure -> a code (SMS; call or email on
request) -> the code -> done. Every answer is the same whatever the tenant knows about the
number; only the code, the limits and Verify's own refusals change what the page says.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from tenants.http import client_ip
from tenants.phones import phone_mask, tenant_phone_region

from ..codes import CodeError
from .forms import ConsentCodeForm, ConsentResendForm, ConsentStartForm
from .messages import check_text, send_error_text
from .public import (
    Evidence,
    PublicForm,
    consent_code_confirm,
    consent_code_request,
    consent_form_public,
    consent_receipt_send,
)


def _key(public: PublicForm) -> str:
    return f"consent:{public.tenant.pk}:{public.form.pk}"


def _render(request, public: PublicForm, *, step: str, form=None, error: str = "", state=None, status=200, **extra):
    context = {
        "public": public,
        "version": public.version,
        "step": step,
        "form": form,
        "error": error,
        "state": state or {},
        "code_form": extra.pop("code_form", None) or ConsentCodeForm(),
        **extra,
    }
    return render(request, "verify/consent_public.html", context, status=status)


@login_not_required
@require_http_methods(["GET", "POST"])
def consent_page(request, org_slug: str, form_slug: str):
    public = consent_form_public(tenant_slug=org_slug, form_slug=form_slug)
    if public is None:
        raise Http404("No such form")
    state = request.session.get(_key(public))
    action = request.POST.get("action", "") if request.method == "POST" else ""
    if action == "start" or (request.method == "POST" and not state):
        return _start(request, public)
    if action == "check":
        return _check(request, public, state)
    if action == "resend":
        return _resend(request, public, state)
    if request.GET.get("restart"):
        request.session.pop(_key(public), None)
        state = None
    if state:
        return _render(request, public, step=_step(state), state=state, **_done(state))
    form = ConsentStartForm(region=tenant_phone_region(public.tenant), collect_email=public.form.collect_email)
    return _render(request, public, step="start", form=form)


def _step(state: dict) -> str:
    """Waiting for a code, or past an approval (the done page offers what is left)."""
    approved = state.get("consented") or state.get("email_proven")
    return "done" if state.get("v") is None and approved else "code"


def _done(state: dict) -> dict:
    return {"email_only": not state.get("consented")}


def _start(request, public: PublicForm):
    form = ConsentStartForm(
        request.POST, region=tenant_phone_region(public.tenant), collect_email=public.form.collect_email
    )
    if not form.is_valid():
        return _render(request, public, step="start", form=form, status=400)
    phone, email = form.cleaned_data["phone"], form.cleaned_data.get("email") or ""
    honeypot = bool(form.cleaned_data["website"])
    state = {"v": None, "phone": phone, "email": email, "to": phone_mask(phone), "channel": "sms", "honeypot": honeypot}
    if not honeypot:  # a filled honeypot gets the same answer, and no code
        try:
            sent = consent_code_request(
                public=public, phone=phone, email=email, channel="sms", client_ip=client_ip(request)
            )
        except CodeError as exc:
            return _render(
                request,
                public,
                step="start",
                form=form,
                error=send_error_text(exc),
                status=429 if exc.kind == "limited" else 400,
            )
        state["v"] = sent.id
    request.session[_key(public)] = state
    return redirect(request.path)


def _resend(request, public: PublicForm, state):
    if not state:
        return redirect(request.path)
    form = ConsentResendForm(request.POST)
    channel = form.cleaned_data["channel"] if form.is_valid() else "sms"
    if channel == "email" and not state.get("email"):
        channel = "sms"
    try:
        if state.get("v") is not None or not state.get("honeypot"):
            sent = consent_code_request(
                public=public,
                phone=state["phone"],
                email=state.get("email", ""),
                channel=channel,
                client_ip=client_ip(request),
                verification_id=state.get("v"),
            )
            state["v"], channel = sent.id, sent.verification.channel  # a fallback code always goes by SMS
    except CodeError as exc:
        error, status = send_error_text(exc), 429 if exc.kind == "limited" else 400
        return _render(request, public, step=_step(state), state=state, error=error, status=status, **_done(state))
    state["channel"] = channel
    state["to"] = state["email"] if channel == "email" else phone_mask(state["phone"])
    request.session[_key(public)] = state
    return redirect(request.path)


def _check(request, public: PublicForm, state):
    code_form = ConsentCodeForm(request.POST)
    if not code_form.is_valid():
        return _render(request, public, step="code", state=state, code_form=code_form, status=400)
    if state.get("v") is None:
        return _render(request, public, step="code", state=state, error="That code is not right.", status=400)
    evidence = Evidence(
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
        form_url=settings.PUBLIC_BASE_URL + request.path,
    )
    result, event = consent_code_confirm(
        public=public, verification_id=state["v"], code=code_form.cleaned_data["code"].strip(), evidence=evidence
    )
    if not result.approved:
        return _render(request, public, step="code", state=state, error=check_text(result), status=400)
    return _approved(request, public, state, event)


def _approved(request, public: PublicForm, state: dict, event):
    """A code was approved: the phone (consent recorded) or the email (proven, nothing else).
    A receipt goes by email only once both the consent and the address are proven; until
    then the page offers the missing step and the flow stays in the session."""
    if event is not None:
        state["consented"] = event.pk
    else:
        state["email_proven"] = True
    receipt = bool(state.get("consented") and state.get("email_proven") and not state.get("receipt"))
    if receipt:
        consent_receipt_send(public=public, event_id=state["consented"], email=state["email"])
        state["receipt"] = True
    finished = state.get("consented") and (state.get("receipt") or not state.get("email"))
    state["v"] = None
    if finished:
        request.session.pop(_key(public), None)
    else:
        request.session[_key(public)] = state
    return _render(request, public, step="done", state=state, receipt=receipt, **_done(state))
