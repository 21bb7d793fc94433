"""Business hours of a call flow: open days and times in the tenant's time zone, public holidays
closed (the tenant's country calendar, the same cached calendars the compliance gate reads)."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from messaging.compliance.calendars import holiday_calendar_nearest


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def hours_open(hours: dict, *, now: datetime, zone: str, country: str) -> bool:
    """Whether a (clean) flow's business hours are open at `now`. Hours switched off: always open."""
    if not hours.get("enabled"):
        return True
    local = now.astimezone(ZoneInfo(zone))
    if local.weekday() not in hours["days"]:
        return False
    if hours.get("holidays"):
        calendar = holiday_calendar_nearest(country=country)
        if calendar is not None and local.date() in calendar:
            return False
    return _hhmm(hours["open"]) <= local.time().replace(tzinfo=None) < _hhmm(hours["close"])
