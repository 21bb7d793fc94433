"""The message log's rows (`{% message_rows %}`) show exactly what the per-row template filters
showed: local time as `date:"Y-m-d H:i:s T"`, numbers and bodies by the viewer's masking rule,
the body cut after masking, status labels and error explanations."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.template import Context, Template
from django.utils import timezone

from messaging.models import Message
from messaging.templatetags.messaging_tags import message_rows
from tenants.scoping import TenantAccess
from tenants.twilio_errors import explain

pytestmark = pytest.mark.django_db

OLD_CELLS = Template(
    '{% load portal %}{{ when|date:"Y-m-d H:i:s T" }}|{% phone m.from_number %}|{% phone m.to_number %}|'
    "{% phone_text m.body as body %}{{ body|truncatechars:80 }}|{{ m.get_status_display }}"
)
LONG_BODY = "Call me back at +14155550123 about order 1234567890, " + "tracking details follow " * 5


def message(tenant, **fields):
    defaults = {
        "direction": "outbound",
        "sid": "SM" + "0" * 32,
        "from_number": "+14155550100",
        "to_number": "+14155550123",
        "body": LONG_BODY,
        "status": "undelivered",
        "error_code": 30003,
    }
    return Message.objects.create(tenant=tenant, **{**defaults, **fields})


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Europe/Paris", "Asia/Kolkata"])
@pytest.mark.parametrize(
    "moment", [datetime(2026, 1, 15, 23, 59, 58, tzinfo=UTC), datetime(2026, 7, 1, 3, 4, 5, tzinfo=UTC)]
)
@pytest.mark.parametrize("role", ["admin", "support"])
def test_each_cell_reads_as_the_filters_rendered_it(tenant, zone, moment, role):
    m = message(tenant, accepted_at=moment)
    context = {"tenant": tenant, "current_tenant": tenant, "tenant_access": TenantAccess(role), "m": m}
    with timezone.override(ZoneInfo(zone)):
        (row,) = message_rows(Context(context), [m])
        old = OLD_CELLS.render(Context({**context, "when": m.sent_at}))
    assert "|".join([row["when"], row["from"], row["to"], row["body"], row["status"]]) == old
    assert row["error"] == explain(30003) and row["badge"] == "danger"
    assert row["url"] == f"/t/{tenant.slug}/messages/{m.id}/"
    if role == "support":
        assert "+14155550123" not in old  # the rule masked the customer, in the column and the body


def test_an_unsent_message_shows_when_it_was_created_and_a_purged_body_nothing(tenant):
    m = message(tenant, status="pending", error_code=None, body_purged_at=timezone.now(), keyword="help")
    (row,) = message_rows(Context({"tenant": tenant, "tenant_access": TenantAccess("admin")}), [m])
    assert row["sent"] is False and row["when"].startswith(f"{timezone.localtime(m.created_at):%Y-%m-%d}")
    assert row["purged"] and row["body"] == "" and row["keyword"] == "HELP" and row["error"] == ""
