"""Messaging's Celery tasks. Celery's autodiscovery imports this package; importing each module
here registers its tasks. Task names are explicit and never change (beat rows and queued
messages refer to them), whatever module a task lives in."""

from . import bulk, delivery, rollups

__all__ = ["bulk", "delivery", "rollups"]
