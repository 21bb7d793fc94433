"""Publishing consent forms: create, and edit into a new version when what a person is shown
(disclosure, brand, frequency) changes. Every write audited."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max, QuerySet

from messaging.ledgers.services import disclosure_get_or_create
from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.scoping import get_scoped_or_404
from tenants.services import audit_record

from ..models import ConsentForm, ConsentFormVersion

#: Fields of a version: changing any of them makes a new one (what the person was shown).
VERSION_FIELDS = ("brand", "frequency", "disclosure_text")


def consent_form_list(*, tenant: Tenant) -> QuerySet[ConsentForm]:
    return ConsentForm.objects.for_tenant(tenant).select_related("current_version").order_by("title", "id")


def consent_form_versions(*, tenant: Tenant, form: ConsentForm) -> list[ConsentFormVersion]:
    return list(
        ConsentFormVersion.objects.for_tenant(tenant).filter(form=form).select_related("disclosure").order_by("-number")
    )


def _version_create(*, tenant: Tenant, form: ConsentForm, data: dict, actor) -> ConsentFormVersion:
    number = (ConsentFormVersion.objects.for_tenant(tenant).filter(form=form).aggregate(n=Max("number"))["n"] or 0) + 1
    disclosure = disclosure_get_or_create(
        tenant=tenant, text=data["disclosure_text"], version=f"{form.slug} v{number}", purpose=form.purpose
    )
    version = ConsentFormVersion.objects.create(
        tenant=tenant,
        form=form,
        number=number,
        brand=data["brand"],
        frequency=data["frequency"],
        disclosure=disclosure,
        created_by=actor,
    )
    ConsentForm.objects.for_tenant(tenant).filter(pk=form.pk).update(current_version=version)
    form.current_version = version
    return version


@transaction.atomic
def consent_form_create(*, tenant: Tenant, data: dict, audit: AuditContext) -> ConsentForm:
    """A new form (`data`: slug, title, purpose, collect_email, is_published and the version
    fields) with its version 1."""
    form = ConsentForm.objects.create(
        tenant=tenant,
        slug=data["slug"],
        title=data["title"],
        purpose=data["purpose"],
        collect_email=data["collect_email"],
        is_published=data["is_published"],
    )
    version = _version_create(tenant=tenant, form=form, data=data, actor=audit.actor)
    audit_record(
        action="consent_form.create",
        tenant=tenant,
        audit=audit,
        target=form.slug,
        details={"form": form.pk, "version": version.number, "disclosure": version.disclosure.sha256},
    )
    return form


@transaction.atomic
def consent_form_update(*, tenant: Tenant, form: ConsentForm, data: dict, audit: AuditContext) -> ConsentForm:
    """Save the form's own fields; a changed disclosure, brand or frequency becomes a new
    version (earlier consents keep pointing at the version their person saw)."""
    locked = (
        ConsentForm.objects.for_tenant(tenant)
        .select_for_update(of=("self",))
        .select_related("current_version__disclosure")
        .get(pk=form.pk)
    )
    current = locked.current_version
    shown = {"brand": current.brand, "frequency": current.frequency, "disclosure_text": current.disclosure.text}
    changed = [name for name in VERSION_FIELDS if shown[name] != data[name]]
    fields = {name: data[name] for name in ("title", "collect_email", "is_published")}
    ConsentForm.objects.for_tenant(tenant).filter(pk=form.pk).update(**fields)
    for name, value in fields.items():
        setattr(locked, name, value)
    version = _version_create(tenant=tenant, form=locked, data=data, actor=audit.actor) if changed else current
    audit_record(
        action="consent_form.update",
        tenant=tenant,
        audit=audit,
        target=locked.slug,
        details={"form": locked.pk, "version": version.number, "new_version": bool(changed), "changed": changed},
    )
    return locked


def consent_form_slug_taken(*, tenant: Tenant, slug: str) -> bool:
    return ConsentForm.objects.for_tenant(tenant).filter(slug=slug).exists()


def consent_form_get(*, tenant: Tenant, form_id: int) -> ConsentForm:
    """One form of `tenant` with its current version, or 404."""
    return get_scoped_or_404(
        ConsentForm.objects.select_related("current_version__disclosure"), tenant=tenant, pk=form_id
    )
