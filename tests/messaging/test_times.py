"""Times on pages: the tenant's zone, named; a message shows when it was actually sent."""

from __future__ import annotations

from datetime import UTC, datetime

from django.urls import reverse
from django.utils import timezone

from messaging.models import Message
from tests.messaging.factories import MessageFactory

LAUNCH = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)  # the bulk launch: when the row was created
SENT = datetime(2025, 1, 15, 19, 5, tzinfo=UTC)  # when the pacer handed it to Twilio: 14:05 EST


def _paced_message(tenant):
    message = MessageFactory(tenant=tenant, status="delivered", at=LAUNCH)
    Message.objects.for_tenant(tenant).filter(pk=message.pk).update(accepted_at=SENT)
    return message


def test_log_and_detail_show_the_send_time_in_the_tenants_zone(client, tenant, viewer):
    assert tenant.timezone == "America/New_York"
    message = _paced_message(tenant)
    client.force_login(viewer)
    log = client.get(reverse("message_list", kwargs={"tenant_slug": tenant.slug})).content.decode()
    assert "2025-01-15 14:05:00 EST" in log
    assert "12:00:00" not in log and "19:05" not in log  # neither the launch time nor UTC
    assert "America/New_York" in log
    detail = client.get(reverse("message_detail", kwargs={"tenant_slug": tenant.slug, "message_id": message.pk}))
    assert "2025-01-15 14:05:00 EST" in detail.content.decode()


def test_zone_is_activated_per_request_and_dropped_after(client, tenant, viewer):
    tenant.timezone = "Asia/Tokyo"
    tenant.save(update_fields=["timezone"])
    _paced_message(tenant)
    client.force_login(viewer)
    for name in ("tenant_dashboard", "message_list"):
        body = client.get(reverse(name, kwargs={"tenant_slug": tenant.slug})).content.decode()
        assert "Times in Asia/Tokyo" in body, name
    assert "2025-01-16 04:05:00 JST" in body
    assert timezone.get_current_timezone_name() == "UTC"  # never leaks into the next request


def test_unsent_message_shows_its_creation_marked_as_not_sent(client, tenant, viewer):
    MessageFactory(tenant=tenant, status="pending", sid=None, at=LAUNCH)
    client.force_login(viewer)
    log = client.get(reverse("message_list", kwargs={"tenant_slug": tenant.slug})).content.decode()
    assert "not sent yet" in log and "2025-01-15 07:00:00 EST" in log
