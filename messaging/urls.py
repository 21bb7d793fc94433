from django.urls import path

from . import views

urlpatterns = [
    path("messages/", views.message_list, name="message_list"),
    path("opt-outs/", views.opt_out_list, name="opt_out_list"),
    path("consent/", views.consent_list, name="consent_list"),
    path("numbers/", views.number_list, name="number_list"),
]
