from django.urls import include, path

from . import views

urlpatterns = [path("calls/", views.call_list, name="call_list"), path("", include("voice.flows.urls"))]
