from django.urls import path

from . import views

urlpatterns = [path("verifications/", views.verification_list, name="verification_list")]
