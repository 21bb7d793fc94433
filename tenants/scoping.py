"""The one tenant-scoping mechanism: every view, selector and export goes through it.

Tenant-owned models inherit `TenantOwned`; their default manager refuses to hand out rows
until a tenant is named (`Model.objects.for_tenant(tenant)`), so a forgotten filter fails
loudly instead of leaking another tenant's data (PostHog's second line of defence). The
unscoped manager `all_tenants` exists for platform jobs (retention, monitoring) that must
cross tenants on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.http import Http404


class TenantScopeError(RuntimeError):
    """A tenant-owned table was queried without naming the tenant."""


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant) -> TenantQuerySet:
        if tenant is None or getattr(tenant, "pk", None) is None:
            raise TenantScopeError(f"{self.model.__name__} queried with no tenant")
        qs = self.all()
        qs._tenant_scoped = True
        return qs.filter(tenant=tenant)

    def _fetch_all(self):
        if not getattr(self, "_tenant_scoped", False) and not getattr(self, "_cross_tenant", False):
            raise TenantScopeError(
                f"{self.model.__name__} rows read without .for_tenant(tenant); use all_tenants "
                "for deliberate cross-tenant work"
            )
        super()._fetch_all()

    def _clone(self):
        clone = super()._clone()
        clone._tenant_scoped = getattr(self, "_tenant_scoped", False)
        clone._cross_tenant = getattr(self, "_cross_tenant", False)
        return clone

    def count(self):
        self._check_scope()
        return super().count()

    def exists(self):
        self._check_scope()
        return super().exists()

    def update(self, **kwargs):
        self._check_scope()
        return super().update(**kwargs)

    def delete(self):
        self._check_scope()
        return super().delete()

    def aggregate(self, *args, **kwargs):
        self._check_scope()
        return super().aggregate(*args, **kwargs)

    def iterator(self, chunk_size=None):
        self._check_scope()
        return super().iterator(chunk_size=chunk_size)

    def _check_scope(self):
        if not getattr(self, "_tenant_scoped", False) and not getattr(self, "_cross_tenant", False):
            raise TenantScopeError(f"{self.model.__name__} queried without .for_tenant(tenant)")


class _CrossTenantManager(models.Manager):
    def get_queryset(self):
        qs = TenantQuerySet(self.model, using=self._db)
        qs._cross_tenant = True
        return qs


class TenantOwned(models.Model):
    """Abstract base for every row that belongs to one tenant."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")

    objects = TenantQuerySet.as_manager()
    all_tenants = _CrossTenantManager()

    class Meta:
        abstract = True
        base_manager_name = "all_tenants"


def get_scoped_or_404(model_or_qs, *, tenant, **lookup):
    """Fetch one row of `tenant` or 404: another tenant's object looks like a missing one."""
    qs = model_or_qs if isinstance(model_or_qs, models.QuerySet) else model_or_qs.objects.all()
    try:
        return qs.for_tenant(tenant).get(**lookup)
    except qs.model.DoesNotExist as exc:
        raise Http404(f"No {qs.model._meta.verbose_name} here") from exc


@dataclass(frozen=True)
class TenantAccess:
    """What the current user may do in the current tenant."""

    role: str  # admin | viewer | support | superuser

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "superuser")

    @property
    def masks_numbers(self) -> bool:
        return self.role == "support"

    @property
    def label(self) -> str:
        return {"admin": "Admin", "viewer": "Viewer", "support": "Support (read-only)", "superuser": "Operator"}[
            self.role
        ]
