"""The members page (/t/<slug>/members/: roles, removal, invitations) and the invitation link
itself (/invite/<token>/), which names no tenant and is opened signed in or not."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from .forms import InvitationForm, InvitationSignupForm, MemberRoleForm
from .http import audit_context
from .invitations import (
    InvitationRefused,
    InvitationUnusable,
    invitation_accept,
    invitation_accept_new_account,
    invitation_create,
    invitation_revoke,
    platform_staff,
)
from .models import Invitation, Membership
from .selectors import invitation_get, invitation_get_by_token, invitation_pending_list, membership_get, membership_list
from .services import LastAdminError, membership_remove, membership_set

#: Signs a new account in for the rest of the visit; named because another backend (a login
#: throttle) may be configured alongside, and `login` then needs to be told which one.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def tenant_members(request):
    """Members and their roles; admins invite by email here. A new invitation's link is shown in
    the answer to the POST itself, once, and kept nowhere (no session, no redirect, no cache)."""
    tenant = request.tenant
    form = InvitationForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        created = invitation_create(tenant=tenant, email=data["email"], role=data["role"], audit=audit_context(request))
        form = InvitationForm()
    response = render(
        request,
        "tenants/members.html",
        {
            "tenant": tenant,
            "members": membership_list(tenant=tenant),
            "invitations": invitation_pending_list(tenant=tenant) if request.tenant_access.can_write else [],
            "form": form,
            "created": created,
            "roles": Membership.Role.choices,
        },
    )
    if created is not None:
        response["Cache-Control"] = "no-store"
    return response


@require_POST
def tenant_member_role(request, membership_id: int):
    """Change an existing member's role (the last active admin keeps theirs)."""
    membership = membership_get(tenant=request.tenant, membership_id=membership_id)
    if membership is None:
        raise Http404("No such member")
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role.")
        return redirect("tenant_members", tenant_slug=request.tenant.slug)
    try:
        _, outcome = membership_set(
            user=membership.user, tenant=request.tenant, role=form.cleaned_data["role"], audit=audit_context(request)
        )
    except LastAdminError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{membership.user.username}: role {outcome}.")
    return redirect("tenant_members", tenant_slug=request.tenant.slug)


@require_POST
def tenant_member_remove(request, membership_id: int):
    membership = membership_get(tenant=request.tenant, membership_id=membership_id)
    if membership is None:
        raise Http404("No such member")
    if membership.user_id == request.user.id:
        messages.error(request, "You cannot remove yourself; ask another admin.")
    else:
        try:
            membership_remove(membership=membership, audit=audit_context(request))
        except LastAdminError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Removed {membership.user.username}.")
    return redirect("tenant_members", tenant_slug=request.tenant.slug)


@require_POST
def tenant_invitation_revoke(request, invitation_id: int):
    invitation = invitation_get(tenant=request.tenant, invitation_id=invitation_id)
    if invitation is None:
        raise Http404("No such invitation")
    if invitation_revoke(invitation=invitation, audit=audit_context(request)):
        messages.success(request, f"Withdrew the invitation to {invitation.email}: its link no longer works.")
    else:
        messages.error(request, f"The invitation to {invitation.email} was already used or withdrawn.")
    return redirect("tenant_members", tenant_slug=request.tenant.slug)


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept_page(request, token: str):
    """Whoever holds the link: signed in, accept (or be told why not); signed out, sign in and
    come back, or create an account that accepts at once. An unknown link answers 404, one that
    was used, withdrawn or has expired 410, each with a page saying so."""
    invitation = invitation_get_by_token(token=token)
    if invitation is None:
        return _unusable(request, InvitationUnusable("unknown"))
    state = invitation.state_at(timezone.now())
    if state == Invitation.State.ACCEPTED and request.user.is_authenticated and invitation.accepted_by == request.user:
        return redirect("tenant_dashboard", tenant_slug=invitation.tenant.slug)
    if state != Invitation.State.PENDING:
        return _unusable(request, InvitationUnusable(state))
    signup = InvitationSignupForm(request.POST if request.POST.get("action") == "signup" else None)
    refusal = None
    try:
        if request.method == "POST" and request.user.is_authenticated and request.POST.get("action") == "accept":
            invitation_accept(token=token, user=request.user, audit=audit_context(request))
            return _joined(request, invitation)
        if request.method == "POST" and not request.user.is_authenticated and signup.is_valid():
            user, _ = invitation_accept_new_account(
                token=token,
                username=signup.cleaned_data["username"],
                password=signup.cleaned_data["password1"],
                audit=audit_context(request),
            )
            login(request, user, backend=MODEL_BACKEND)
            return _joined(request, invitation)
    except InvitationUnusable as exc:
        return _unusable(request, exc)
    except InvitationRefused as exc:
        refusal = str(exc)
    staff = request.user.is_authenticated and platform_staff(request.user)
    return render(
        request,
        "tenants/invitation_accept.html",
        {"invitation": invitation, "signup": signup, "refusal": refusal, "staff": staff, "token": token},
        status=403 if refusal else 200,
    )


def _joined(request, invitation: Invitation):
    messages.success(request, f"Welcome to {invitation.tenant.name}: you joined as {invitation.get_role_display()}.")
    return redirect("tenant_dashboard", tenant_slug=invitation.tenant.slug)


def _unusable(request, exc: InvitationUnusable):
    return render(request, "tenants/invitation_unusable.html", {"message": str(exc)}, status=exc.status)
