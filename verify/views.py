"""Verify pages of a tenant: the Verifications log (filters, keyset pages, conversion per day,
CSV export) and the consent forms an admin publishes (list, create, edit into a new version)."""

from __future__ import annotations

from functools import partial

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from tenants.exports import csv_streaming_response
from tenants.http import audit_context
from tenants.pagination import keyset_page
from tenants.phones import phone_mask
from tenants.services import audit_record
from tenants.views import require_admin

from .consent.admin import (
    consent_form_create,
    consent_form_get,
    consent_form_list,
    consent_form_slug_taken,
    consent_form_update,
    consent_form_versions,
)
from .consent.forms import ConsentFormForm
from .log import VERIFICATION_COLUMNS, conversion_by_day, verification_filtered, verification_rows


@require_GET
def verification_list(request):
    tenant = request.tenant
    filters, qs = verification_filtered(tenant=tenant, params=request.GET)
    page = keyset_page(qs, cursor=request.GET.get("cursor"))
    return render(
        request,
        "verify/verification_list.html",
        {
            "tenant": tenant,
            "filter_form": filters.form,
            "page": page,
            "filtered": any(v for k, v in request.GET.items() if k != "cursor"),
            "conversion": conversion_by_day(tenant=tenant, now=timezone.now()),
        },
    )


@require_GET
def verification_export(request):
    """The log as CSV (`sid,to,channel,status,created_at,updated_at`) with the page's filters;
    audited before the first byte leaves, numbers masked for support staff."""
    tenant = request.tenant
    _, qs = verification_filtered(tenant=tenant, params=request.GET)
    masked = request.tenant_access.masks_numbers
    filters = {k: phone_mask(v) if k == "phone" else v for k, v in request.GET.items() if k != "cursor" and v}
    audit_record(
        action="export.verifications",
        tenant=tenant,
        target="verifications",
        details={"format": "csv", "masked": masked, "filters": filters},
        audit=audit_context(request),
    )
    return csv_streaming_response(
        filename=f"verifications-{tenant.slug}-{timezone.now():%Y%m%d-%H%M}.csv",
        header=VERIFICATION_COLUMNS,
        rows=verification_rows(qs, show=phone_mask if masked else str),
    )


@require_GET
def consent_form_index(request):
    tenant = request.tenant
    return render(
        request, "verify/consent_form_list.html", {"tenant": tenant, "forms": consent_form_list(tenant=tenant)}
    )


@require_http_methods(["GET", "POST"])
def consent_form_new(request):
    require_admin(request)
    tenant = request.tenant
    taken = partial(consent_form_slug_taken, tenant=tenant)
    form = ConsentFormForm(request.POST or None, slug_taken=taken)
    if request.method == "POST" and form.is_valid():
        created = consent_form_create(tenant=tenant, data=form.cleaned_data, audit=audit_context(request))
        messages.success(request, f"Form {created.title} published as version 1.")
        return redirect("consent_form_list", tenant_slug=tenant.slug)
    return render(request, "verify/consent_form_edit.html", {"tenant": tenant, "form": form, "consent_form": None})


@require_http_methods(["GET", "POST"])
def consent_form_edit(request, form_id: int):
    tenant = request.tenant
    consent_form = consent_form_get(tenant=tenant, form_id=form_id)
    version = consent_form.current_version
    initial = {
        "title": consent_form.title,
        "slug": consent_form.slug,
        "purpose": consent_form.purpose,
        "collect_email": consent_form.collect_email,
        "is_published": consent_form.is_published,
        "brand": version.brand,
        "frequency": version.frequency,
        "disclosure_text": version.disclosure.text,
    }
    form = ConsentFormForm(request.POST or None, initial=initial, instance=consent_form)
    if request.method == "POST" and form.is_valid():
        saved = consent_form_update(
            tenant=tenant, form=consent_form, data=form.cleaned_data, audit=audit_context(request)
        )
        messages.success(request, f"Form {saved.title} saved (now {saved.current_version.label}).")
        return redirect("consent_form_list", tenant_slug=tenant.slug)
    context = {
        "tenant": tenant,
        "form": form,
        "consent_form": consent_form,
        "versions": consent_form_versions(tenant=tenant, form=consent_form),
    }
    return render(request, "verify/consent_form_edit.html", context)
