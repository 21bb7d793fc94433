from django.urls import path

from . import views

app_name = "second_factor"

urlpatterns = [
    path("", views.manage, name="manage"),
    path("verify/", views.verify, name="verify"),
    path("verify/send/", views.verify_send, name="verify_send"),
    path("enrol/", views.enrol, name="enrol"),
    path("enrol/sms/", views.enrol_sms, name="enrol_sms"),
    path("recovery-codes/", views.recovery_codes, name="recovery_codes"),
    path("disable/", views.disable, name="disable"),
]
