"""Member invitations: how a tenant admin adds people (writes; reads are in tenants.selectors).

An admin invites an email address with a role; the portal makes a one-time link that expires
(`INVITATION_VALID_DAYS`) and shows it to the admin once. Whoever opens it signs in or creates an
account and accepts, which creates the membership. The admin never names an existing account,
so nobody can be attached to a tenant without taking the step themselves, and the admin's form
answers the same whether or not anyone uses that address. Platform staff accounts (operators,
staff, support) never join a tenant this way: their access is the operator's to give, through
`create_portal_user` or the Django admin.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import BaseUserManager
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from .audit import AuditContext
from .models import Invitation, Membership, Tenant, is_support
from .services import audit_record, tenant_membership_lock


class InvitationUnusable(Exception):
    """The link does not (or no longer) lead anywhere: unknown, expired, revoked, used, or its
    tenant is closed. `status` is what the page answers (404 unknown, 410 gone)."""

    MESSAGES = {
        "unknown": "This invitation link is not valid. Check that you copied all of it, or ask for a new one.",
        Invitation.State.EXPIRED: "This invitation has expired. Ask the tenant's admin for a new one.",
        Invitation.State.REVOKED: "This invitation was withdrawn. Ask the tenant's admin if you still need access.",
        Invitation.State.ACCEPTED: "This invitation has already been used. Each link works once.",
        "closed": "This tenant is closed: it no longer takes new members.",
    }

    def __init__(self, reason: str):
        self.reason = reason
        self.status = 404 if reason == "unknown" else 410
        super().__init__(self.MESSAGES[reason])


class InvitationRefused(Exception):
    """The link is fine but this account may not use it (nothing is written; the link stays
    usable by another account)."""


@dataclass(frozen=True)
class InvitationCreated:
    """A new invitation and its link: the only time the raw token exists."""

    invitation: Invitation
    url: str


def invitation_url(*, token: str) -> str:
    """The absolute link to hand over (and, once the portal sends email, to mail)."""
    return f"{settings.PUBLIC_BASE_URL}{reverse('invitation_accept', kwargs={'token': token})}"


def platform_staff(user) -> bool:
    """Operators, Django staff and support staff: accounts that see every tenant, so they must
    never also become a member through a link (they use a separate account for that)."""
    return bool(user.is_superuser or user.is_staff or is_support(user))


@transaction.atomic
def invitation_create(*, tenant: Tenant, email: str, role: str, audit: AuditContext) -> InvitationCreated:
    """Invite `email` into `tenant` with `role`; returns the invitation and its one-time link.

    No account is looked up: the answer must not tell the admin whether the address is known.
    A pending invitation to the same address is withdrawn, since its link was shown only once and
    inviting again is how an admin replaces a lost one.
    """
    email = BaseUserManager.normalize_email(email.strip())
    now = timezone.now()
    earlier = Invitation.objects.for_tenant(tenant).select_for_update()
    earlier = earlier.filter(email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True)
    for invitation in earlier:
        _revoke(invitation=invitation, audit=audit, now=now, replaced=True)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        token_hash=Invitation.token_hash_for(token),
        created_by=audit.actor,
        expires_at=now + timedelta(days=settings.INVITATION_VALID_DAYS),
    )
    audit_record(
        action="invitation.created",
        tenant=tenant,
        audit=audit,
        target=email,
        details={"invitation": invitation.pk, "role": role, "expires_at": invitation.expires_at.isoformat()},
    )
    return InvitationCreated(invitation=invitation, url=invitation_url(token=token))


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, audit: AuditContext) -> bool:
    """Withdraw a pending invitation; False when it was already used or withdrawn (nothing
    written). Locked, so a revoke and an acceptance at the same moment cannot both succeed."""
    invitation = Invitation.all_tenants.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        return False
    _revoke(invitation=invitation, audit=audit, now=timezone.now(), replaced=False)
    return True


def _revoke(*, invitation: Invitation, audit: AuditContext, now, replaced: bool) -> None:
    invitation.revoked_at = now
    invitation.save(update_fields=["revoked_at"])
    audit_record(
        action="invitation.revoked",
        tenant=invitation.tenant,
        audit=audit,
        target=invitation.email,
        details={"invitation": invitation.pk, "role": invitation.role, "replaced": replaced},
    )


def _usable_locked(*, token: str, user=None) -> Invitation:
    """The invitation behind `token`, row-locked, if it can still be accepted (by `user`, when
    given); raises InvitationUnusable or InvitationRefused otherwise. Inside a transaction."""
    invitation = (
        Invitation.all_tenants.select_for_update()
        .select_related("tenant")
        .filter(token_hash__in=Invitation.token_hashes_for(token))
        .first()
    )
    if invitation is None:
        raise InvitationUnusable("unknown")
    state = invitation.state_at(timezone.now())
    if state != Invitation.State.PENDING:
        raise InvitationUnusable(state)
    if invitation.tenant.status == Tenant.Status.CLOSED:
        raise InvitationUnusable("closed")
    if user is not None and platform_staff(user):
        raise InvitationRefused(
            f"{user.get_username()} is a platform staff account, which never joins a tenant through an"
            " invitation. Sign out and accept with a separate account."
        )
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user, audit: AuditContext) -> tuple[Membership, bool]:
    """`user` accepts the invitation behind `token`: they become a member with its role and the
    link is used up. Returns the membership and whether this call accepted it.

    The invitation row stays locked until the membership is written, so a double submit (or two
    people with the same link) cannot both get in: the second sees it used. Accepting again as
    the same user changes nothing. Someone who is already a member is refused and the link
    stays unused: an invitation never changes an existing role (the admin does that on the
    members page, under the last-admin rule).
    """
    audit = replace(audit, actor=user)
    try:
        invitation = _usable_locked(token=token, user=user)
    except InvitationUnusable as exc:
        existing = _accepted_by(token=token, user=user) if exc.reason == Invitation.State.ACCEPTED else None
        if existing is None:
            raise
        return existing, False
    tenant = invitation.tenant
    tenant_membership_lock(tenant)
    current = Membership.objects.filter(user=user, tenant=tenant).first()
    if current is not None:
        raise InvitationRefused(
            f"{user.get_username()} is already a member of {tenant.name} ({current.get_role_display()}):"
            " the invitation was not used. Ask an admin there to change your role instead."
        )
    membership = Membership.objects.create(user=user, tenant=tenant, role=invitation.role)
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    target = user.get_username()
    audit_record(
        action="membership.added",
        tenant=tenant,
        audit=audit,
        target=target,
        details={"role": invitation.role, "via": "invitation"},
    )
    audit_record(
        action="invitation.accepted",
        tenant=tenant,
        audit=audit,
        target=target,
        details={"invitation": invitation.pk, "role": invitation.role, "email": invitation.email},
    )
    return membership, True


def _accepted_by(*, token: str, user) -> Membership | None:
    """`user`'s membership when they themselves already accepted this link (a double click)."""
    invitation = Invitation.all_tenants.filter(token_hash__in=Invitation.token_hashes_for(token)).first()
    if invitation is None or invitation.accepted_by_id != user.pk:
        return None
    return Membership.objects.filter(user=user, tenant_id=invitation.tenant_id).first()


@transaction.atomic
def invitation_accept_new_account(*, token: str, username: str, password: str, audit: AuditContext):
    """Create an account (the invited address as its email) and accept with it, all or nothing:
    a link that cannot be used creates no account. Returns the new user and the membership.

    The caller has validated the username and the password (Django's validators).
    """
    invitation = _usable_locked(token=token)
    user = get_user_model().objects.create_user(username=username, email=invitation.email, password=password)
    membership, _ = invitation_accept(token=token, user=user, audit=audit)
    return user, membership
