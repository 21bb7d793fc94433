from django.urls import path

from .views import bulk, exports, history, ledgers, log, policy, revocations, send

# Mounted under /t/<tenant_slug>/ by commsportal.urls. A number in a URL is an opaque token
# (the E.164 form is still accepted, for old bookmarks): see messaging/number_refs.py.
urlpatterns = [
    path("messages/", log.message_list, name="message_list"),
    path("messages/export.csv", exports.message_export, name="message_export"),
    path("messages/send/", send.message_send_view, name="message_send"),
    path("messages/send/preview/", send.message_send_preview, name="message_send_preview"),
    path("messages/<int:message_id>/", log.message_detail, name="message_detail"),
    path("messages/<int:message_id>/status/", send.message_status, name="message_status"),
    path("opt-outs/", ledgers.opt_out_list, name="opt_out_list"),
    path("opt-outs/export.csv", exports.opt_out_export, name="opt_out_export"),
    path("opt-outs/change/", ledgers.opt_out_change, name="opt_out_change"),
    path("opt-outs/import/", ledgers.opt_out_import, name="opt_out_import"),
    path("consent/", ledgers.consent_list, name="consent_list"),
    path("consent/export.csv", exports.consent_export, name="consent_export"),
    path("consent/new/", ledgers.consent_capture, name="consent_capture"),
    path("consent/import/", ledgers.consent_import, name="consent_import"),
    path("consent/<int:event_id>/", ledgers.consent_detail, name="consent_detail"),
    path("numbers/<str:number>/history/", history.number_history, name="number_history"),
    path("numbers/<str:number>/unmask/", history.number_unmask, name="number_unmask"),
    path("revocations/", revocations.revocation_list, name="revocation_list"),
    path("revocations/<int:review_id>/confirm/", revocations.revocation_confirm, name="revocation_confirm"),
    path("revocations/<int:review_id>/dismiss/", revocations.revocation_dismiss, name="revocation_dismiss"),
    path("keywords/", revocations.keyword_list, name="keyword_list"),
    path("keywords/<int:keyword_id>/remove/", revocations.keyword_remove, name="keyword_remove"),
    path("sending-policy/", policy.sending_policy, name="sending_policy"),
    # Message templates and bulk sends.
    path("templates/", bulk.template_list_view, name="template_list"),
    path("templates/new/", bulk.template_create_view, name="template_create"),
    path("templates/<int:template_id>/", bulk.template_edit_view, name="template_edit"),
    path("templates/<int:template_id>/delete/", bulk.template_delete_view, name="template_delete"),
    path("bulk/", bulk.bulk_list_view, name="bulk_list"),
    path("bulk/new/", bulk.bulk_create_view, name="bulk_create"),
    path("bulk/<int:bulk_id>/", bulk.bulk_detail_view, name="bulk_detail"),
    path("bulk/<int:bulk_id>/recipients.csv", exports.bulk_recipients_export, name="bulk_recipients_export"),
    path("bulk/<int:bulk_id>/preview/", bulk.bulk_preview_view, name="bulk_preview"),
    path("bulk/<int:bulk_id>/launch/", bulk.bulk_launch_view, name="bulk_launch"),
    path("bulk/<int:bulk_id>/progress.json", bulk.bulk_progress_view, name="bulk_progress"),
    path("bulk/<int:bulk_id>/pause/", bulk.bulk_pause_view, name="bulk_pause"),
    path("bulk/<int:bulk_id>/resume/", bulk.bulk_resume_view, name="bulk_resume"),
    path("bulk/<int:bulk_id>/cancel/", bulk.bulk_cancel_view, name="bulk_cancel"),
]
