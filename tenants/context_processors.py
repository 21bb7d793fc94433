from .models import Tenant, is_support


def portal(request):
    """Navigation context: the tenants this user may switch to and their role here."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "switchable_tenants": Tenant.objects.visible_to(user).only("name", "slug", "status"),
        "current_tenant": getattr(request, "tenant", None),
        "tenant_access": getattr(request, "tenant_access", None),
        "user_is_support": is_support(user),
    }
