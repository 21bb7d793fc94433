"""The revocation review queue and the tenant's own keywords."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tenants.http import audit_context
from tenants.scoping import get_scoped_or_404

from ..forms.ledgers import RevocationDecisionForm, TenantKeywordForm
from ..intake.keywords import DEFAULT_HELP_KEYWORDS, DEFAULT_OPT_IN_KEYWORDS, DEFAULT_OPT_OUT_KEYWORDS
from ..ledgers import revocations
from ..ledgers.selectors import revocation_review_lists, tenant_keyword_list
from ..ledgers.services import tenant_keyword_add, tenant_keyword_remove
from ..models import RevocationReview, TenantKeyword

# --- Revocation review queue -------------------------------------------------------------------


@require_GET
def revocation_list(request):
    tenant = request.tenant
    open_reviews, decided = revocation_review_lists(tenant=tenant)
    now = timezone.now()
    return render(
        request,
        "messaging/revocation_list.html",
        {
            "tenant": tenant,
            "open_reviews": open_reviews,
            "decided": decided,
            "overdue": sum(1 for r in open_reviews if r.deadline_at < now),
            "now": now,
            "soon": now + timedelta(days=2),
            "form": RevocationDecisionForm(),
        },
    )


@require_POST
def revocation_confirm(request, review_id: int):
    review = get_scoped_or_404(RevocationReview, tenant=request.tenant, pk=review_id)
    form = RevocationDecisionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        revocations.revocation_confirm(tenant=request.tenant, review=review, note=note, audit=audit_context(request))
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Confirmed: {review.phone} is opted out and its consents revoked.")
    return redirect("revocation_list", tenant_slug=request.tenant.slug)


@require_POST
def revocation_dismiss(request, review_id: int):
    review = get_scoped_or_404(RevocationReview, tenant=request.tenant, pk=review_id)
    form = RevocationDecisionForm(request.POST)
    note = (form.cleaned_data["note"] if form.is_valid() else "").strip()
    if not note:
        messages.error(request, "A dismissal needs a note: say why this message is not a revocation.")
        return redirect("revocation_list", tenant_slug=request.tenant.slug)
    try:
        revocations.revocation_dismiss(tenant=request.tenant, review=review, note=note, audit=audit_context(request))
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Dismissed: {review.phone} stays reachable. Your note is on record.")
    return redirect("revocation_list", tenant_slug=request.tenant.slug)


# --- Keywords ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def keyword_list(request):
    tenant = request.tenant
    form = TenantKeywordForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        keyword = tenant_keyword_add(
            tenant=tenant, kind=form.cleaned_data["kind"], word=form.cleaned_data["word"], audit=audit_context(request)
        )
        messages.success(request, f"Added {keyword.word} ({keyword.get_kind_display()}).")
        return redirect("keyword_list", tenant_slug=tenant.slug)
    keywords = list(tenant_keyword_list(tenant=tenant))
    groups = [
        (kind, label, defaults, [k for k in keywords if k.kind == kind])
        for (kind, label), defaults in zip(
            TenantKeyword.Kind.choices,
            (DEFAULT_OPT_OUT_KEYWORDS, DEFAULT_OPT_IN_KEYWORDS, DEFAULT_HELP_KEYWORDS),
            strict=True,
        )
    ]
    return render(request, "messaging/keyword_list.html", {"tenant": tenant, "form": form, "groups": groups})


@require_POST
def keyword_remove(request, keyword_id: int):
    keyword = get_scoped_or_404(TenantKeyword, tenant=request.tenant, pk=keyword_id)
    tenant_keyword_remove(tenant=request.tenant, keyword=keyword, audit=audit_context(request))
    messages.success(request, f"Removed {keyword.word}.")
    return redirect("keyword_list", tenant_slug=request.tenant.slug)
