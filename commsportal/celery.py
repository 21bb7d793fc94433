"""The Celery application: wiring only; tasks live in each app's tasks.py."""

import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

from tenants.logging import log_filter_install

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "commsportal.settings")

app = Celery("commsportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # A task is acknowledged only once it finished, and redelivered when its worker dies:
    # every task must therefore be idempotent (see DOMAIN.md, Celery on Redis).
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=60,
    task_time_limit=90,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    enable_utc=True,
)
app.autodiscover_tasks()


@after_setup_logger.connect
@after_setup_task_logger.connect
def logging_scrub_install(logger, **kwargs) -> None:
    """The worker replaces the root logger's handlers with its own (and gives task loggers
    theirs), bypassing Django's LOGGING: put the number-masking, body-dropping filter on them."""
    log_filter_install(logger)


@app.task(name="commsportal.ping")
def ping(payload: str = "pong") -> str:
    """Round-trip probe used by the health check and the worker test."""
    return payload
