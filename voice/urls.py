from django.urls import path

from . import views

urlpatterns = [path("calls/", views.call_list, name="call_list")]
