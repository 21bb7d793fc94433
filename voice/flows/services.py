"""Call flows: reading them (selectors) and saving a new version (the one write, audited)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse

from tenants.audit import AuditContext
from tenants.models import PhoneNumber, Tenant
from tenants.phones import tenant_phone_region
from tenants.services import audit_record

from ..models import CallFlow, CallFlowVersion
from .schema import flow_definition_clean
from .twiml import CallContext


def flow_numbers(*, tenant: Tenant) -> QuerySet[PhoneNumber]:
    """The tenant's voice numbers still in its account, each with its flow (if any) joined."""
    return (
        PhoneNumber.objects.for_tenant(tenant)
        .filter(released_at__isnull=True, voice=True)
        .select_related("call_flow__current_version")
        .order_by("phone_number")
    )


def flow_for_number(*, tenant: Tenant, number: PhoneNumber) -> CallFlow | None:
    return CallFlow.objects.for_tenant(tenant).filter(phone_number=number).select_related("current_version").first()


def flow_versions(*, tenant: Tenant, flow: CallFlow | None) -> QuerySet[CallFlowVersion]:
    """A flow's versions, newest first (none for a number without a flow)."""
    versions = CallFlowVersion.objects.for_tenant(tenant).select_related("created_by").order_by("-number")
    return versions.filter(flow=flow) if flow is not None else versions.none()


def flow_context(*, tenant: Tenant, our_number: str, caller: str) -> CallContext:
    """The absolute callback URLs and parties a flow's TwiML names (Twilio wants absolute URLs)."""
    base = settings.PUBLIC_BASE_URL
    return CallContext(
        gather_url=base + reverse("webhook_voice_gather"),
        recording_callback=base + reverse("webhook_voice_recording"),
        our_number=our_number,
        caller=caller,
        brand=tenant.name,
    )


@transaction.atomic
def call_flow_save(
    *, tenant: Tenant, number: PhoneNumber, name: str, definition: dict, audit: AuditContext
) -> CallFlowVersion:
    """Validate `definition` and save it as the number's next flow version (the flow is created
    on first save); calls already under way keep the version they started with.

    Raises ValidationError listing every problem; nothing is written then.
    """
    clean = flow_definition_clean(definition, region=tenant_phone_region(tenant))
    name = (name or "").strip()[:80] or f"Calls to {number.phone_number}"
    # Lock the number's row: two admins saving at once get versions n and n+1, never two n's.
    PhoneNumber.objects.for_tenant(tenant).select_for_update().filter(pk=number.pk).first()
    flow, created = CallFlow.objects.for_tenant(tenant).get_or_create(
        tenant=tenant, phone_number=number, defaults={"name": name}
    )
    versions = CallFlowVersion.objects.for_tenant(tenant).filter(flow=flow)
    last = versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = CallFlowVersion.objects.create(
        tenant=tenant, flow=flow, number=last + 1, definition=clean, created_by=audit.actor
    )
    flow.name = name
    flow.current_version = version
    flow.save(update_fields=["name", "current_version", "updated_at"])
    audit_record(
        action="call_flow.save",
        tenant=tenant,
        audit=audit,
        target=number.phone_number,
        details={"flow": flow.pk, "version": version.number, "created": created, "name": name},
    )
    return version
