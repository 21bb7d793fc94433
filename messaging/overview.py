"""Messaging's parts of tenants' overview pages, registered in `tenants.registry`.

* the tenant dashboard's delivery panel (statistics and chart over ?range=24h|7d|30d) and its
  range switch;
* the support overview's failure rate over 24 h per tenant, which orders the table (worst first);
* the numbers page's "look up a customer's number" box, opening the number's consent history.

The figures themselves are `messaging.monitoring`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from django.urls import reverse

from messaging.forms.ledgers import NumberLookupForm
from tenants.models import Tenant
from tenants.registry import NumberLookup, OverviewPanel, SupportColumn

from .monitoring import DEFAULT_RANGE, RANGES, Outcomes, delivery_stats, outcomes_by_tenant, status_chart
from .number_refs import number_ref

SUPPORT_WINDOW = timedelta(hours=24)


def delivery_panel_context(*, tenant: Tenant, params: Mapping[str, str]) -> dict:
    range_key = params.get("range", DEFAULT_RANGE)
    stats = delivery_stats(tenant=tenant, range_key=range_key if range_key in RANGES else DEFAULT_RANGE)
    return {"stats": stats, "chart": status_chart(stats), "ranges": RANGES.values()}


DELIVERY_PANEL = OverviewPanel(
    key="messaging.delivery",
    template_name="messaging/_overview_delivery.html",
    toolbar_template_name="messaging/_overview_range.html",
    context=delivery_panel_context,
)


def outcomes_collect(*, now: datetime) -> dict[int, Outcomes]:
    return outcomes_by_tenant(since=now - SUPPORT_WINDOW)


def _outcomes_csv(outcomes: Outcomes) -> list:
    rate = outcomes.failure_rate
    return ["" if rate is None else f"{rate:.4f}", outcomes.failed, outcomes.finished]


def _outcomes_sort_key(outcomes: Outcomes) -> tuple:
    """Worst failure rate first; tenants with nothing finished (no rate) last."""
    return (outcomes.failure_rate is None, -(outcomes.failure_rate or 0))


OUTCOMES_COLUMN = SupportColumn(
    key="outcomes",
    collect=outcomes_collect,
    empty=Outcomes,
    header_template_name="messaging/_support_outcomes_header.html",
    cell_template_name="messaging/_support_outcomes_cells.html",
    header_count=2,
    csv_headers=("failure_rate_24h", "failed_24h", "finished_24h"),
    csv_values=_outcomes_csv,
    sort_key=_outcomes_sort_key,
    caption=(
        "Worst delivery failure rate first: (undelivered + failed) / (delivered + undelivered + failed) "
        "of outcomes in the last 24 h."
    ),
)


def number_history_target(*, tenant: Tenant, access, cleaned_data: Mapping) -> str:
    """The number's history page, by its opaque reference: the URL never holds the number."""
    ref = number_ref(cleaned_data["phone"], tenant=tenant)
    return reverse("number_history", kwargs={"tenant_slug": tenant.slug, "number": ref})


NUMBER_HISTORY_LOOKUP = NumberLookup(
    key="messaging.number_history",
    title="Look up a customer's number",
    form_class=NumberLookupForm,
    param="phone",
    target=number_history_target,
    button="Open history",
    help_text=(
        "Every consent and opt-out event, keyword messages and revocation reviews of one number: "
        "the printable consent proof."
    ),
)
