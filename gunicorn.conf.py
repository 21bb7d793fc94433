"""Gunicorn settings read from the working directory (`gunicorn commsportal.wsgi:application`
run in the repository root picks this file up by itself).

Only logging is set here: gunicorn's error and access logs are its own, out of reach of
Django's LOGGING, and an access log line holds the request line and the referrer, where a
number sits in paths (`/numbers/+1…/history/`) and query strings (`?to=%2B1…`, `?phone=`) and
a body in a query (`?body=`). The standard access log format is kept; each line goes through
the portal's `LogScrubFilter` (tenants/logging.py) before it is written.
"""

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
