"""Hosted consent forms (double opt-in): a form and its versions. Each version pins the exact
disclosure text (messaging's `ConsentDisclosure`, stored once per text) and brand a person saw;
changing either makes a new version, and the consent event records which one."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from messaging.models import Purpose
from tenants.models import AppendOnlyModel
from tenants.scoping import TenantOwned


class ConsentForm(TenantOwned):
    """A public page `/c/<tenant-slug>/<slug>/` where a person consents to `purpose`."""

    slug = models.SlugField(max_length=60)
    title = models.CharField(max_length=120)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    collect_email = models.BooleanField(
        "ask for an email address", default=False, help_text="Optional field; offers the code by email too."
    )
    is_published = models.BooleanField(default=True)
    current_version = models.ForeignKey(
        "ConsentFormVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="consent_form_unique_slug")]

    def __str__(self) -> str:
        return self.title


class ConsentFormVersion(AppendOnlyModel, TenantOwned):
    """What one version of a form showed: brand, message frequency and the exact disclosure."""

    form = models.ForeignKey(ConsentForm, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    brand = models.CharField(max_length=80)
    frequency = models.CharField(
        "message frequency", max_length=80, default="Msg frequency varies", help_text="e.g. Up to 4 msgs/month"
    )
    disclosure = models.ForeignKey("messaging.ConsentDisclosure", on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["form", "number"], name="consent_form_version_unique")]

    def __str__(self) -> str:
        return f"{self.form_id} v{self.number}"

    @property
    def label(self) -> str:
        return f"v{self.number}"
