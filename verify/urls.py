from django.urls import path

from . import views
from .email import views as email_views

urlpatterns = [
    path("verifications/", views.verification_list, name="verification_list"),
    path("verifications/export.csv", views.verification_export, name="verification_export"),
    path("consent-forms/", views.consent_form_index, name="consent_form_list"),
    path("consent-forms/new/", views.consent_form_new, name="consent_form_create"),
    path("consent-forms/<int:form_id>/edit/", views.consent_form_edit, name="consent_form_edit"),
    path("email/", email_views.email_list, name="email_list"),
    path("email/export.csv", email_views.email_export, name="email_export"),
    path("email/<int:email_id>/", email_views.email_detail, name="email_detail"),
    path("email/suppressions/", email_views.email_suppression_list, name="email_suppression_list"),
    path("email/suppressions/export.csv", email_views.email_suppression_export, name="email_suppression_export"),
    path(
        "email/suppressions/<int:entry_id>/remove/",
        email_views.email_suppression_remove,
        name="email_suppression_remove",
    ),
]
