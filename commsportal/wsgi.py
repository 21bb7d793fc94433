"""WSGI entry point: the portal, with a short middleware lane for Twilio's webhooks.

Requests under `/webhooks/` are served by a second Django handler built from
`settings.WEBHOOK_MIDDLEWARE` instead of `MIDDLEWARE`: a webhook has no session, user, CSRF
token, flash messages or page to frame, so it skips that work (each is lazy, but every layer
still costs a call per request). The views are the same; the gateway (`tenants.webhooks`)
checks every request itself.
"""

import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "commsportal.settings")
portal = get_wsgi_application()
WEBHOOK_PREFIX = "/webhooks/"


class WebhookHandler(WSGIHandler):
    """Django's WSGI handler with `settings.WEBHOOK_MIDDLEWARE` as its middleware chain."""

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler reads settings.MIDDLEWARE; swapped only while this handler is built, once,
        # at startup, before any request is served.
        portal_middleware = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.WEBHOOK_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = portal_middleware


webhooks = WebhookHandler()


def application(environ, start_response):
    handler = webhooks if environ.get("PATH_INFO", "").startswith(WEBHOOK_PREFIX) else portal
    return handler(environ, start_response)
