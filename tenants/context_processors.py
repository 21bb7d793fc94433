from django.utils.functional import SimpleLazyObject

from .alerts import alert_open_list
from .models import Tenant, is_support
from .numbers import tenant_own_numbers


def portal(request):
    """Navigation context: the tenants this user may switch to and their role here."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    tenant = getattr(request, "tenant", None)
    return {
        "switchable_tenants": Tenant.objects.visible_to(user).only("name", "slug", "status"),
        "current_tenant": tenant,
        "tenant_access": getattr(request, "tenant_access", None),
        "user_is_support": is_support(user),
        # For `{% phone %}`: looked up only when a page shows a number to a masked viewer.
        "tenant_own_numbers": SimpleLazyObject(lambda: tenant_own_numbers(tenant=tenant)) if tenant else frozenset(),
    }


def alerts(request):
    """Open monitoring alerts of the current tenant, for the banner every role sees."""
    tenant = getattr(request, "tenant", None)
    user = getattr(request, "user", None)
    if tenant is None or user is None or not user.is_authenticated:
        return {}
    return {"open_alerts": alert_open_list(tenant=tenant)}
