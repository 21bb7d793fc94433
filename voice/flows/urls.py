from django.urls import path

from . import views

# Mounted under /t/<tenant_slug>/ by voice/urls.py. A flow belongs to a number of the inventory.
urlpatterns = [
    path("calls/flows/", views.flow_list, name="call_flow_list"),
    path("calls/flows/<int:number_id>/", views.flow_edit, name="call_flow_edit"),
    path("calls/flows/<int:number_id>/versions/", views.flow_version_list, name="call_flow_versions"),
    path("calls/flows/<int:number_id>/versions/<int:version>/", views.flow_version_detail, name="call_flow_version"),
]
