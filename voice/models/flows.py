"""Call flows: what a caller hears on one of the tenant's numbers, edited by tenant admins.

A flow's content lives in immutable versions; a call keeps the version it started with, so an
edit mid-call never breaks it (the Gather callback finds the version through the Call row).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from tenants.models import AppendOnlyModel
from tenants.scoping import TenantOwned


class CallFlow(TenantOwned):
    """The flow attached to one of the tenant's numbers (at most one per number)."""

    phone_number = models.OneToOneField(
        "tenants.PhoneNumber", on_delete=models.CASCADE, related_name="call_flow", verbose_name="number"
    )
    name = models.CharField(max_length=80)
    current_version = models.ForeignKey(
        "CallFlowVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "call flow"

    def __str__(self) -> str:
        return self.name


class CallFlowVersion(AppendOnlyModel, TenantOwned):
    """One saved, validated version of a flow. `definition` is the flow engine's JSON document."""

    flow = models.ForeignKey(CallFlow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(help_text="1, 2, 3… per flow.")
    definition = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["flow", "-number"]
        verbose_name = "call flow version"
        constraints = [models.UniqueConstraint(fields=["flow", "number"], name="callflow_version_unique")]

    def __str__(self) -> str:
        return f"{self.flow_id} v{self.number}"
