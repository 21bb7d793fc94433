from django.urls import path

from . import send_views, views

# Mounted under /t/<tenant_slug>/ by commsportal.urls. A number in a URL is its E.164 form for
# members, an opaque token for support staff (see messaging/number_refs.py).
urlpatterns = [
    path("messages/", views.message_list, name="message_list"),
    path("messages/send/", send_views.message_send_view, name="message_send"),
    path("messages/send/preview/", send_views.message_send_preview, name="message_send_preview"),
    path("messages/<int:message_id>/", views.message_detail, name="message_detail"),
    path("messages/<int:message_id>/status/", send_views.message_status, name="message_status"),
    path("opt-outs/", views.opt_out_list, name="opt_out_list"),
    path("opt-outs/change/", views.opt_out_change, name="opt_out_change"),
    path("opt-outs/import/", views.opt_out_import, name="opt_out_import"),
    path("consent/", views.consent_list, name="consent_list"),
    path("consent/new/", views.consent_capture, name="consent_capture"),
    path("consent/import/", views.consent_import, name="consent_import"),
    path("consent/<int:event_id>/", views.consent_detail, name="consent_detail"),
    path("numbers/<str:number>/history/", views.number_history, name="number_history"),
    path("numbers/<str:number>/unmask/", views.number_unmask, name="number_unmask"),
    path("revocations/", views.revocation_list, name="revocation_list"),
    path("revocations/<int:review_id>/confirm/", views.revocation_confirm, name="revocation_confirm"),
    path("revocations/<int:review_id>/dismiss/", views.revocation_dismiss, name="revocation_dismiss"),
    path("keywords/", views.keyword_list, name="keyword_list"),
    path("keywords/<int:keyword_id>/remove/", views.keyword_remove, name="keyword_remove"),
    path("sending-policy/", views.sending_policy, name="sending_policy"),
]
