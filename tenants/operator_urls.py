"""Platform operator pages, mounted at /operator/ by commsportal.urls (superusers only)."""

from django.urls import path

from . import operator_views as views

app_name = "operator"

urlpatterns = [
    path("", views.tenant_list, name="tenant_list"),
    path("tenants/new/", views.tenant_create, name="tenant_create"),
    path("tenants/<slug:slug>/", views.tenant_detail, name="tenant_detail"),
    path("tenants/<slug:slug>/suspend/", views.tenant_suspend, name="tenant_suspend"),
    path("tenants/<slug:slug>/reactivate/", views.tenant_reactivate, name="tenant_reactivate"),
    path("tenants/<slug:slug>/close/", views.tenant_close, name="tenant_close"),
    path("tenants/<slug:slug>/api-key/rotate/", views.api_key_rotate, name="api_key_rotate"),
    path("tenants/<slug:slug>/auth-token/start/", views.auth_token_start, name="auth_token_start"),
    path("tenants/<slug:slug>/auth-token/promote/", views.auth_token_promote, name="auth_token_promote"),
    path("tenants/<slug:slug>/auth-token/cancel/", views.auth_token_cancel, name="auth_token_cancel"),
    path("tenants/<slug:slug>/retention/", views.retention_update, name="retention_update"),
    path("tenants/<slug:slug>/erase/", views.number_erase, name="number_erase"),
]
