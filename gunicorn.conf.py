"""Gunicorn settings read from the working directory (`gunicorn commsportal.wsgi:application`
run in the repository root picks this file up by itself).

Only logging is set here: gunicorn's error and access logs are its own, out of reach of
Django's LOGGING, and an access log line holds the request line and the referrer, where a
number sits in paths (`/numbers/+1…/history/`) and query strings (`?to=%2B1…`, `?phone=`) and
a body in a query (`?body=`). The standard access log format is kept; each line goes through
the portal's `LogScrubFilter` (tenants/logging.py) before it is written.
"""

import gc
import itertools
import sys
from pathlib import Path

from gunicorn.glogging import Logger

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gunicorn may run from its own bin/

from tenants.logging import log_filter_install  # noqa: E402


class ScrubbingLogger(Logger):
    """gunicorn's logger with the scrub filter on its error and access logs; set up again (new
    handlers) on every configuration reload, so the filter is installed after each setup."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log_filter_install(log)


logger_class = ScrubbingLogger


# --- Garbage collection -------------------------------------------------------------------------
# A loaded portal process tracks ~140,000 long-lived objects (modules, models, URL patterns,
# compiled templates); a full (generation 2) collection walks them all, about 90 ms on one core,
# with every thread of the worker stopped. Moved to the permanent generation once the worker is
# up, and again once it is warm (templates compiled, URLs resolved), a collection walks only what
# requests have made since. What is frozen is never freed: it lives as long as the worker anyway.
GC_FREEZE_AFTER_REQUESTS = 50
_served = itertools.count(1)


def post_worker_init(worker):
    gc.freeze()


def post_request(worker, req, environ, resp):
    if next(_served) == GC_FREEZE_AFTER_REQUESTS:  # itertools.count: one thread sees each number
        gc.freeze()  # O(1), no collection first: the few cycles not yet freed stay, once
