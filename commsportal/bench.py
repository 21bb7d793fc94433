"""WSGI application for `manage.py bench_webhooks` only: the project as deployed plus one bare view.

`/bench/bare/` answers 204 and does nothing else, behind the portal's full middleware, so the
benchmark can compare our webhooks with the cheapest page this server can answer;
`/webhooks/bench/bare/` is the same view on the webhooks' short middleware lane
(`commsportal.wsgi`), the floor of any webhook. Production never loads this module (gunicorn
serves `commsportal.wsgi`).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "commsportal.settings")

from commsportal import wsgi  # noqa: E402 - sets Django up (the production app, webhook lane included)

application = wsgi.application

from django.conf import settings  # noqa: E402
from django.contrib.auth.decorators import login_not_required  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from commsportal.urls import urlpatterns as project_urlpatterns  # noqa: E402


@csrf_exempt
@login_not_required
def bare(request):
    return HttpResponse(status=204)


urlpatterns = [path("bench/bare/", bare), path("webhooks/bench/bare/", bare), *project_urlpatterns]
settings.ROOT_URLCONF = __name__
