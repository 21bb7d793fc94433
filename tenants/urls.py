from django.urls import path

from . import audit_views, views

# Mounted under /t/<tenant_slug>/ by commsportal.urls.
tenant_urlpatterns = [
    path("", views.tenant_dashboard, name="tenant_dashboard"),
    path("settings/", views.tenant_settings, name="tenant_settings"),
    path("members/", views.tenant_members, name="tenant_members"),
    path("members/<int:membership_id>/remove/", views.tenant_member_remove, name="tenant_member_remove"),
    path("audit/", audit_views.tenant_audit_log, name="tenant_audit_log"),
    path("audit/export.csv", audit_views.tenant_audit_export, name="tenant_audit_export"),
]
