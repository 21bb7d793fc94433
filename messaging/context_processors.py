"""Template context for every tenant page: the overdue revocation count behind the red banner."""

from .ledgers.selectors import revocation_overdue_count


def revocations(request):
    """`overdue_revocations`: open revocation reviews of `request.tenant` past their deadline.

    One indexed COUNT on the (small) review table, only on tenant pages.
    """
    tenant = getattr(request, "tenant", None)
    if tenant is None or getattr(request, "tenant_access", None) is None:
        return {}
    return {"overdue_revocations": revocation_overdue_count(tenant=tenant)}
