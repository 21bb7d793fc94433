from django.urls import path

from . import views

# Mounted under /t/<tenant_slug>/ by commsportal.urls.
tenant_urlpatterns = [
    path("", views.tenant_dashboard, name="tenant_dashboard"),
    path("settings/", views.tenant_settings, name="tenant_settings"),
    path("members/", views.tenant_members, name="tenant_members"),
    path("members/<int:membership_id>/remove/", views.tenant_member_remove, name="tenant_member_remove"),
    path("audit/", views.tenant_audit_log, name="tenant_audit_log"),
]
