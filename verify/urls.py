from django.urls import path

from . import views

urlpatterns = [
    path("verifications/", views.verification_list, name="verification_list"),
    path("verifications/export.csv", views.verification_export, name="verification_export"),
    path("consent-forms/", views.consent_form_index, name="consent_form_list"),
    path("consent-forms/new/", views.consent_form_new, name="consent_form_create"),
    path("consent-forms/<int:form_id>/edit/", views.consent_form_edit, name="consent_form_edit"),
]
