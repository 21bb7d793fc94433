"""Voice's parts of tenants' cross-app pages, registered in `tenants.registry`
(`voice.registrations`):

* the tenant dashboard's calls panel over the dashboard's range (?range=24h|7d|30d): inbound
  calls answered, missed and sent to voicemail, outbound calls, average duration;
* the numbers page's "calls with a number" lookup, opening the call log filtered by it;
* the number history page's calls section (the support per-number history includes calls).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.db.models import Avg, Count, Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from messaging.monitoring import DEFAULT_RANGE, RANGES
from messaging.number_refs import number_ref
from tenants.models import Tenant
from tenants.registry import NumberHistorySection, NumberLookup, OverviewPanel

from .calls import statuses
from .calls.forms import CallLookupForm
from .models import Call, Recording

__all__ = ["CALLS_HISTORY_SECTION", "CALLS_LOOKUP", "CALLS_PANEL", "CallStats", "call_stats"]

MISSED = (statuses.BUSY, statuses.NO_ANSWER, statuses.FAILED, statuses.CANCELED)
HISTORY_LIMIT = 100


@dataclass(frozen=True)
class CallStats:
    answered: int
    missed: int
    voicemail: int
    outbound: int
    average_duration: float | None

    @property
    def average_duration_display(self) -> str:
        if self.average_duration is None:
            return "—"
        minutes, seconds = divmod(round(self.average_duration), 60)
        return f"{minutes}:{seconds:02d}"


def call_stats(*, tenant: Tenant, since) -> CallStats:
    """One grouped query over the tenant's calls created since `since`.

    Voicemail: an inbound call with a recording. Answered: an inbound call completed without
    one. Missed: inbound, busy / no answer / failed / hung up while ringing (canceled). The
    average duration is over completed calls, both directions."""
    recorded = Recording.objects.for_tenant(tenant).filter(call=OuterRef("pk"))
    calls = Call.objects.for_tenant(tenant).filter(created_at__gte=since).annotate(has_recording=Exists(recorded))
    inbound = Q(direction=Call.Direction.INBOUND)
    figures = calls.aggregate(
        answered=Count("pk", filter=inbound & Q(status=statuses.COMPLETED, has_recording=False)),
        missed=Count("pk", filter=inbound & Q(status__in=MISSED)),
        voicemail=Count("pk", filter=inbound & Q(has_recording=True)),
        outbound=Count("pk", filter=Q(direction=Call.Direction.OUTBOUND)),
        average_duration=Avg("duration", filter=Q(status=statuses.COMPLETED, duration__isnull=False)),
    )
    return CallStats(**figures)


def _range_window(range_key: str) -> timedelta:
    found = RANGES.get(range_key) or RANGES[DEFAULT_RANGE]
    return timedelta(hours=found.buckets) if found.unit == "hour" else timedelta(days=found.buckets)


def calls_panel_context(*, tenant: Tenant, params: Mapping[str, str]) -> dict:
    range_key = params.get("range", DEFAULT_RANGE)
    stats_range = RANGES.get(range_key) or RANGES[DEFAULT_RANGE]
    return {
        "call_stats": call_stats(tenant=tenant, since=timezone.now() - _range_window(stats_range.key)),
        "call_range": stats_range,
    }


CALLS_PANEL = OverviewPanel(
    key="voice.calls", template_name="voice/_overview_calls.html", context=calls_panel_context, order=150
)


def calls_lookup_target(*, tenant: Tenant, access, cleaned_data: Mapping) -> str:
    """The call log filtered by the number, named by its opaque reference (never the number)."""
    ref = number_ref(cleaned_data["call_phone"], tenant=tenant)
    return reverse("call_list", kwargs={"tenant_slug": tenant.slug}) + "?" + urlencode({"number": ref})


CALLS_LOOKUP = NumberLookup(
    key="voice.calls",
    title="Calls with a customer's number",
    form_class=CallLookupForm,
    param="call_phone",
    target=calls_lookup_target,
    button="Open calls",
    help_text="Every call from or to one number, with its timeline and recordings.",
    order=150,
)


def calls_history_context(*, tenant: Tenant, phone: str) -> dict:
    """The number's calls, newest first (at most `HISTORY_LIMIT`), for its history page."""
    calls = list(
        Call.objects.for_tenant(tenant)
        .filter(Q(from_number=phone) | Q(to_number=phone))
        .order_by("-created_at", "-id")[: HISTORY_LIMIT + 1]
    )
    return {"number_calls": calls[:HISTORY_LIMIT], "number_calls_more": len(calls) > HISTORY_LIMIT}


CALLS_HISTORY_SECTION = NumberHistorySection(
    key="voice.calls", template_name="voice/_number_history_calls.html", context=calls_history_context, order=150
)
