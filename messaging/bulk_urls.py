"""Message templates and bulk sends; mounted under /t/<tenant_slug>/ by commsportal.urls."""

from django.urls import path

from . import bulk_views as views

urlpatterns = [
    path("templates/", views.template_list_view, name="template_list"),
    path("templates/new/", views.template_create_view, name="template_create"),
    path("templates/<int:template_id>/", views.template_edit_view, name="template_edit"),
    path("templates/<int:template_id>/delete/", views.template_delete_view, name="template_delete"),
    path("bulk/", views.bulk_list_view, name="bulk_list"),
    path("bulk/new/", views.bulk_create_view, name="bulk_create"),
    path("bulk/<int:bulk_id>/", views.bulk_detail_view, name="bulk_detail"),
    path("bulk/<int:bulk_id>/preview/", views.bulk_preview_view, name="bulk_preview"),
    path("bulk/<int:bulk_id>/launch/", views.bulk_launch_view, name="bulk_launch"),
    path("bulk/<int:bulk_id>/progress.json", views.bulk_progress_view, name="bulk_progress"),
    path("bulk/<int:bulk_id>/pause/", views.bulk_pause_view, name="bulk_pause"),
    path("bulk/<int:bulk_id>/resume/", views.bulk_resume_view, name="bulk_resume"),
    path("bulk/<int:bulk_id>/cancel/", views.bulk_cancel_view, name="bulk_cancel"),
]
