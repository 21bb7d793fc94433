"""Writes for tenants, memberships and the audit log. Every tenant change goes through here."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from .audit import AuditContext
from .models import SUPPORT_GROUP, AuditEvent, Membership, Tenant


def audit_record(
    *,
    action: str,
    tenant: Tenant | None,
    audit: AuditContext,
    target: str = "",
    reason: str = "",
    details: dict | None = None,
) -> AuditEvent:
    """Append one audit event: who (actor), when, tenant, what, from which IP.

    The caller hands who and where as one `AuditContext` (a view builds it from its request,
    jobs pass `SYSTEM`), so nothing below the view needs the `HttpRequest`.
    """
    return AuditEvent.objects.create(
        tenant=tenant,
        actor=audit.actor,
        actor_label=audit.actor_label,
        action=action,
        target=target[:200],
        reason=reason,
        details=details or {},
        ip_address=audit.ip,
    )


@transaction.atomic
def tenant_upsert(*, slug: str, fields: dict, audit: AuditContext) -> tuple[Tenant, bool]:
    """Create the tenant `slug` or update the given fields of an existing one."""
    tenant = Tenant.objects.select_for_update().filter(slug=slug).first()
    created = tenant is None
    if created:
        tenant = Tenant(slug=slug)
    for name, value in fields.items():
        setattr(tenant, name, value)
    tenant.full_clean()
    tenant.save()
    audit_record(
        action="tenant.create" if created else "tenant.update",
        tenant=tenant,
        audit=audit,
        target=slug,
        details={"fields": sorted(fields)},  # names only: values may be secrets
    )
    return tenant, created


@transaction.atomic
def tenant_settings_update(*, tenant: Tenant, changes: dict, audit: AuditContext) -> list[str]:
    """Apply an admin's settings form; returns the names of the fields that changed."""
    changed = [name for name, value in changes.items() if getattr(tenant, name) != value]
    for name in changed:
        setattr(tenant, name, changes[name])
    if changed:
        tenant.full_clean()
        # Only these columns: a whole-row save could undo a credential rotation that ran meanwhile.
        tenant.save(update_fields=[*changed, "updated_at"])
        audit_record(action="tenant.settings_update", tenant=tenant, audit=audit, details={"fields": changed})
    return changed


class LastAdminError(Exception):
    """The change would leave a tenant with no active admin, so nobody could manage it."""

    def __init__(self, tenant: Tenant):
        super().__init__(
            f"{tenant.name} must keep at least one active admin: add another admin first,"
            " or suspend or close the tenant instead."
        )


def _last_admin_guard(*, membership: Membership) -> None:
    """Refuse to take away `membership`'s admin role when it is the tenant's last active admin.

    The caller holds the tenant row locked, so two concurrent demotions queue up here and the
    second one sees the first one's result instead of both counting the other as still admin.
    """
    if membership.role != Membership.Role.ADMIN:
        return
    others = Membership.objects.filter(
        tenant_id=membership.tenant_id, role=Membership.Role.ADMIN, user__is_active=True
    ).exclude(pk=membership.pk)
    if not others.exists():
        raise LastAdminError(membership.tenant)


def tenant_membership_lock(tenant: Tenant) -> None:
    """Serialise membership changes per tenant (see _last_admin_guard); inside a transaction."""
    Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk", flat=True).first()


def tenants_left_without_admin(*, users) -> list[Tenant]:
    """Tenants whose every active admin is among `users`: deleting or deactivating them all
    would leave nobody to manage the tenant (the same rule as `_last_admin_guard`).

    Closed tenants are left out: nobody manages a closed tenant any more, and closing is the way
    out the refusal offers. Each tenant is locked as `tenant_membership_lock` does, so a
    concurrent demotion cannot slip between this check and the caller's change; call it inside
    the transaction that makes the change.
    """
    user_ids = [user.pk for user in users]
    admins = Membership.objects.filter(role=Membership.Role.ADMIN, user__is_active=True)
    tenant_ids = admins.filter(user_id__in=user_ids).values_list("tenant_id", flat=True)
    orphaned = []
    for tenant in Tenant.objects.filter(pk__in=tenant_ids).exclude(status=Tenant.Status.CLOSED).order_by("name"):
        tenant_membership_lock(tenant)
        if not admins.filter(tenant=tenant).exclude(user_id__in=user_ids).exists():
            orphaned.append(tenant)
    return orphaned


@transaction.atomic
def membership_set(*, user, tenant: Tenant, role: str, audit: AuditContext) -> tuple[Membership, str]:
    """Give `user` `role` in `tenant`; returns the membership and 'added', 'changed' or 'unchanged'.

    Raises LastAdminError (nothing written) when it would demote the tenant's last active admin.
    """
    tenant_membership_lock(tenant)
    membership, created = Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": role})
    outcome = "added" if created else "unchanged"
    details = {"role": role}
    if not created and membership.role != role:
        _last_admin_guard(membership=membership)
        details = {"role": role, "old_role": membership.role, "new_role": role}
        membership.role = role
        membership.save(update_fields=["role"])
        outcome = "changed"
    if outcome != "unchanged":
        audit_record(
            action=f"membership.{outcome}",
            tenant=tenant,
            audit=audit,
            target=user.get_username(),
            details=details,
        )
    return membership, outcome


@transaction.atomic
def membership_remove(*, membership: Membership, audit: AuditContext) -> None:
    """Take `membership`'s user out of the tenant; raises LastAdminError (nothing written) when
    they are its last active admin."""
    tenant_membership_lock(membership.tenant)
    membership = Membership.objects.select_related("tenant", "user").get(pk=membership.pk)
    _last_admin_guard(membership=membership)
    audit_record(
        action="membership.removed",
        tenant=membership.tenant,
        audit=audit,
        target=membership.user.get_username(),
        details={"role": membership.role},
    )
    membership.delete()


@transaction.atomic
def support_grant(*, user, audit: AuditContext) -> bool:
    """Put `user` in the support staff group; True when that changed anything."""
    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    if user.groups.filter(pk=group.pk).exists():
        return False
    user.groups.add(group)
    user.__dict__.pop("_is_support", None)  # is_support() caches on the instance
    audit_record(action="support.granted", tenant=None, audit=audit, target=user.get_username())
    return True


@transaction.atomic
def support_revoke(*, user, audit: AuditContext) -> bool:
    """Take `user` out of the support staff group; True when that changed anything."""
    group = Group.objects.filter(name=SUPPORT_GROUP).first()
    if group is None or not user.groups.filter(pk=group.pk).exists():
        return False
    user.groups.remove(group)
    user.__dict__.pop("_is_support", None)
    audit_record(action="support.revoked", tenant=None, audit=audit, target=user.get_username())
    return True


@transaction.atomic
def superuser_grant(*, user, audit: AuditContext) -> bool:
    """Make `user` a platform operator (superuser and staff); True when that changed anything."""
    if user.is_superuser and user.is_staff:
        return False
    user.is_superuser = user.is_staff = True
    user.save(update_fields=["is_superuser", "is_staff"])
    audit_record(action="superuser.granted", tenant=None, audit=audit, target=user.get_username())
    return True


def portal_user_upsert(*, username: str, password: str | None) -> tuple[object, bool]:
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username)
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    elif created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user, created
