"""gunicorn.conf.py's worker hooks: what a worker loaded is moved out of the garbage collector's
reach once it is up, and again once it is warm, so a full collection (about 90 ms over a loaded
portal's objects, every thread of the worker stopped) no longer lands on a request."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path

from django.conf import settings


def test_a_worker_freezes_what_it_loaded_then_again_once_warm():
    conf = runpy.run_path(str(Path(settings.BASE_DIR) / "gunicorn.conf.py"))
    gc.unfreeze()
    try:
        conf["post_worker_init"](None)
        loaded = gc.get_freeze_count()
        assert loaded > 10_000  # this process has Django and the project loaded

        made_by_requests = [[] for _ in range(5_000)]  # tracked objects made after start-up
        for _ in range(conf["GC_FREEZE_AFTER_REQUESTS"] - 1):
            conf["post_request"](None, None, {}, None)
        assert gc.get_freeze_count() <= loaded  # not yet warm: nothing more frozen

        conf["post_request"](None, None, {}, None)
        warm = gc.get_freeze_count()
        assert warm >= loaded + len(made_by_requests)

        for _ in range(10):
            conf["post_request"](None, None, {}, None)
        assert gc.get_freeze_count() <= warm  # once only
    finally:
        gc.unfreeze()
