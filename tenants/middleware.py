"""Resolve `/t/<tenant-slug>/…` to `request.tenant` after checking the user's access.

The CurrentSiteMiddleware pattern: views never look tenants up themselves. The tenant's time
zone is activated here for the rest of the request, so every page shows its local time. Someone with no
access to a tenant gets a 404 (the tenant's existence is not confirmed); a read-only role
sending a write gets a 403 here, before any view code runs, unless the view is a support
action that is audited on its own (`support_action`).
"""

from __future__ import annotations

import zoneinfo

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import Http404
from django.utils import timezone

from .models import Membership, Tenant, is_support
from .scoping import TenantAccess

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def tenant_with_role(*, slug: str, user) -> Tenant | None:
    """The tenant at `slug` with `member_role`, `user`'s membership role there (None if not a
    member), in one query: every tenant page asks both."""
    role = Membership.objects.filter(tenant=OuterRef("pk"), user=user).values("role")[:1]
    return Tenant.objects.filter(slug=slug).annotate(member_role=Subquery(role)).first()


def tenant_access_for(user, tenant: Tenant) -> TenantAccess | None:
    """The role `user` holds in `tenant`, or None when they may not see it at all (the
    membership read from `tenant.member_role` when `tenant_with_role` loaded it)."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return TenantAccess("superuser")
    if hasattr(tenant, "member_role"):
        role = tenant.member_role
    else:
        role = Membership.objects.filter(user=user, tenant=tenant).values_list("role", flat=True).first()
    if role:
        return TenantAccess(role)
    if is_support(user):
        return TenantAccess("support")
    return None


def support_action(view):
    """Mark a view as a support staff action that may POST despite read-only access.

    The view itself must audit what it does (e.g. unmasking a number with a reason).
    """
    view.support_action = True
    return view


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        request.tenant_access = None
        timezone.deactivate()  # a thread serves many tenants: never inherit the last one's zone
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

    def process_view(self, request, view_func, view_args, view_kwargs):
        slug = view_kwargs.pop("tenant_slug", None)
        if slug is None:
            return None
        if not request.user.is_authenticated:
            return None  # LoginRequiredMiddleware has already redirected; defensive only
        tenant = tenant_with_role(slug=slug, user=request.user)
        access = tenant_access_for(request.user, tenant) if tenant else None
        if access is None:
            raise Http404("No such tenant")
        request.tenant = tenant
        request.tenant_access = access
        # Pages show the tenant's wall-clock time, once for every template and form (exports
        # stay UTC: they convert explicitly).
        timezone.activate(zoneinfo.ZoneInfo(tenant.timezone))
        if request.method not in SAFE_METHODS and not access.can_write:
            allowed = access.role == "support" and getattr(view_func, "support_action", False)
            if not allowed:
                raise PermissionDenied(f"Your role in {tenant.name} is {access.role}: read-only.")
        return None
