"""Placing calls from the portal: the "Place a call" form and the flow editor's test call
(its form is `templates/voice/_test_call_form.html`, which the editor includes)."""

from __future__ import annotations

from django.contrib import messages as flash
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from tenants.http import audit_context
from tenants.scoping import get_scoped_or_404
from tenants.views import require_admin

from ..calls.forms import CallPlaceForm, TestCallForm
from ..calls.placing import call_place
from ..models import CallFlowVersion

GATE_EXPLANATIONS = {
    "opted_out": "Blocked: this number opted out (or was erased). Nothing reaches it, calls included.",
    "no_consent": "Blocked: a prerecorded or text-to-speech call to a mobile needs the person's prior express "
    "consent for this purpose (written consent for marketing).",
    "quiet_hours": "Blocked: it is outside the recipient's allowed local hours. Place it again later.",
    "frequency_cap": "Blocked: this number reached the marketing frequency cap for 24 hours.",
    "revocation_pending": "Blocked: a possible revocation from this number awaits review.",
    "invalid_number": "Blocked: not a valid phone number.",
    "tenant_suspended": "Blocked: this tenant is not active.",
}


@require_http_methods(["GET", "POST"])
def call_place_view(request):
    require_admin(request)
    tenant = request.tenant
    form = CallPlaceForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        version = None
        if data["flow_version"]:
            version = get_scoped_or_404(CallFlowVersion, tenant=tenant, pk=data["flow_version"])
        placed = call_place(
            tenant=tenant,
            to=data["to"],
            from_number=data["from_number"],
            purpose=data["purpose"],
            audit=audit_context(request),
            flow_version=version,
            message=data["message"],
        )
        _flash(request, placed)
        return redirect("call_detail", tenant_slug=tenant.slug, call_id=placed.call.pk)
    return render(request, "voice/call_place.html", {"tenant": tenant, "form": form})


@require_POST
def call_test_view(request):
    """Ring the admin's own phone with a flow version (the flow editor's "test call")."""
    require_admin(request)
    tenant = request.tenant
    form = TestCallForm(request.POST, tenant=tenant)
    if not form.is_valid():
        flash.error(request, "Test call not placed: " + " ".join(e for errors in form.errors.values() for e in errors))
        return redirect("call_list", tenant_slug=tenant.slug)
    version = get_scoped_or_404(
        CallFlowVersion.objects.select_related("flow__phone_number"),
        tenant=tenant,
        pk=form.cleaned_data["flow_version"],
    )
    placed = call_place(
        tenant=tenant,
        to=form.cleaned_data["to"],
        from_number=version.flow.phone_number.phone_number,
        purpose="transactional",
        audit=audit_context(request),
        flow_version=version,
        callee_requested=True,
    )
    _flash(request, placed)
    return redirect("call_detail", tenant_slug=tenant.slug, call_id=placed.call.pk)


def _flash(request, placed) -> None:
    if placed.verdict.sends:
        flash.success(request, "Call queued: the phone rings in a few seconds. This page follows its status.")
    else:
        flash.error(request, GATE_EXPLANATIONS.get(placed.verdict.reason, "Blocked by the compliance gate."))
