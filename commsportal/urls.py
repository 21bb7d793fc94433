from django.contrib import admin
from django.urls import include, path

from messaging.intake import webhooks as messaging_webhooks
from tenants import views as tenant_views
from tenants.urls import invitation_urlpatterns, tenant_urlpatterns
from verify import webhooks as verify_webhooks
from verify.consent import views as consent_views
from voice import webhooks as voice_webhooks

webhook_urlpatterns = [
    path("twilio/messaging/inbound/", messaging_webhooks.inbound, name="webhook_messaging_inbound"),
    path("twilio/messaging/status/", messaging_webhooks.status, name="webhook_messaging_status"),
    path("twilio/voice/inbound/", voice_webhooks.inbound, name="webhook_voice_inbound"),
    path("twilio/voice/gather/", voice_webhooks.gather, name="webhook_voice_gather"),
    path("twilio/voice/status/", voice_webhooks.status, name="webhook_voice_status"),
    path("twilio/voice/recording/", voice_webhooks.recording, name="webhook_voice_recording"),
    path("sendgrid/events/", verify_webhooks.sendgrid_events, name="webhook_sendgrid_events"),
]

urlpatterns = [
    path("", tenant_views.home, name="home"),
    path("healthz", tenant_views.healthz, name="healthz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("support/", tenant_views.support_overview, name="support_overview"),
    path("operator/", include("tenants.operator_urls")),
    path("webhooks/", include(webhook_urlpatterns)),
    path("", include(invitation_urlpatterns)),
    # Public consent forms (no login; CSRF on): verify/consent/views.py.
    path("c/<slug:org_slug>/<slug:form_slug>/", consent_views.consent_page, name="consent_public"),
    path(
        "t/<slug:tenant_slug>/",
        include(
            tenant_urlpatterns
            + [
                path("", include("tenants.number_urls")),
                path("", include("messaging.urls")),
                path("", include("voice.urls")),
                path("", include("verify.urls")),
            ]
        ),
    ),
]
