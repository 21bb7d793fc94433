from django.urls import path

from . import audit_views, member_views, views

# Mounted under /t/<tenant_slug>/ by commsportal.urls.
tenant_urlpatterns = [
    path("", views.tenant_dashboard, name="tenant_dashboard"),
    path("settings/", views.tenant_settings, name="tenant_settings"),
    path("members/", member_views.tenant_members, name="tenant_members"),
    path("members/<int:membership_id>/role/", member_views.tenant_member_role, name="tenant_member_role"),
    path("members/<int:membership_id>/remove/", member_views.tenant_member_remove, name="tenant_member_remove"),
    path(
        "members/invitations/<int:invitation_id>/revoke/",
        member_views.tenant_invitation_revoke,
        name="tenant_invitation_revoke",
    ),
    path("audit/", audit_views.tenant_audit_log, name="tenant_audit_log"),
    path("audit/export.csv", audit_views.tenant_audit_export, name="tenant_audit_export"),
]

# Mounted at the root: an invitation link names no tenant (whoever holds it may not be a member
# of anything yet), and the token is the whole credential.
invitation_urlpatterns = [
    path("invite/<slug:token>/", member_views.invitation_accept_page, name="invitation_accept"),
]
