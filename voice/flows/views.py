"""Call flow pages: the flow of each number, the editor with its step-through preview, and the
version history. Tenant admins edit; viewers and support staff read."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.views.decorators.http import require_GET, require_http_methods

from tenants.http import audit_context
from tenants.models import PhoneNumber
from tenants.phones import tenant_phone_region
from tenants.scoping import get_scoped_or_404
from tenants.views import require_admin

from ..models import CallFlowVersion
from .forms import FlowEditor
from .preview import PREVIEW_CALLER, flow_preview
from .schema import default_definition, flow_definition_clean
from .services import call_flow_save, flow_context, flow_for_number, flow_numbers, flow_versions

#: vcalls' "test call" form; the editor shows it once that template exists.
TEST_CALL_TEMPLATE = "voice/_test_call_form.html"


def _number(request, number_id: int) -> PhoneNumber:
    return get_scoped_or_404(PhoneNumber.objects.filter(released_at__isnull=True), tenant=request.tenant, pk=number_id)


def _preview(request, number: PhoneNumber, definition: dict):
    ctx = flow_context(tenant=request.tenant, our_number=number.phone_number, caller=PREVIEW_CALLER)
    return flow_preview(definition, ctx)


def _test_call_available() -> bool:
    try:
        get_template(TEST_CALL_TEMPLATE)
    except TemplateDoesNotExist:
        return False
    return True


@require_GET
def flow_list(request):
    return render(
        request, "voice/flow_list.html", {"tenant": request.tenant, "numbers": flow_numbers(tenant=request.tenant)}
    )


def _save_or_preview(request, number: PhoneNumber, editor: FlowEditor):
    """(redirect after a save, or None; the preview of the posted definition, or None)."""
    if not editor.is_valid():
        return None, None
    try:
        if "preview" in request.POST:
            clean = flow_definition_clean(editor.definition(), region=tenant_phone_region(request.tenant))
            return None, _preview(request, number, clean)
        version = call_flow_save(
            tenant=request.tenant,
            number=number,
            name=editor.name,
            definition=editor.definition(),
            audit=audit_context(request),
        )
    except ValidationError as exc:
        editor.flow.add_error(None, exc)
        return None, None
    messages.success(
        request,
        f"Saved version {version.number}. New calls use it; calls under way keep the version they started with.",
    )
    return redirect("call_flow_edit", tenant_slug=request.tenant.slug, number_id=number.pk), None


@require_http_methods(["GET", "POST"])
def flow_edit(request, number_id: int):
    """The editor (admins) or the flow as it stands (read-only roles), with the preview."""
    number = _number(request, number_id)
    flow = flow_for_number(tenant=request.tenant, number=number)
    current = flow.current_version if flow is not None else None
    definition = (
        current.definition
        if current is not None
        else default_definition(greeting=f"Thank you for calling {request.tenant.name}.")
    )
    editor, posted_preview = None, None
    if request.method == "POST":
        require_admin(request)
        editor = FlowEditor(request.POST, definition=definition)
        done, posted_preview = _save_or_preview(request, number, editor)
        if done is not None:
            return done
    elif request.tenant_access.can_write:
        editor = FlowEditor(definition=definition, name=flow.name if flow else "")
    return render(
        request,
        "voice/flow_edit.html",
        {
            "tenant": request.tenant,
            "number": number,
            "flow": flow,
            "current": current,
            "editor": editor,
            "preview": posted_preview or (_preview(request, number, definition) if current is not None else None),
            "preview_is_draft": posted_preview is not None,
            "test_call_available": current is not None and _test_call_available(),
        },
    )


@require_GET
def flow_version_list(request, number_id: int):
    number = _number(request, number_id)
    flow = flow_for_number(tenant=request.tenant, number=number)
    return render(
        request,
        "voice/flow_versions.html",
        {
            "tenant": request.tenant,
            "number": number,
            "flow": flow,
            "versions": flow_versions(tenant=request.tenant, flow=flow),
        },
    )


@require_GET
def flow_version_detail(request, number_id: int, version: int):
    number = _number(request, number_id)
    row = get_scoped_or_404(
        CallFlowVersion.objects.select_related("flow", "created_by"),
        tenant=request.tenant,
        flow__phone_number=number,
        number=version,
    )
    return render(
        request,
        "voice/flow_version_detail.html",
        {
            "tenant": request.tenant,
            "number": number,
            "version": row,
            "preview": _preview(request, number, row.definition),
        },
    )
