"""Retention, GDPR erasure and legal hold cover calls and recordings; the dashboard's calls
panel; a number's history lists its calls; the numbers page's calls lookup."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tenants.audit import SYSTEM
from tenants.retention import number_erase, retention_purge_tenant
from tests.voice.factories import CALLER, CallFactory, RecordingFactory
from voice.models import Call, CallEvent, Recording
from voice.overview import call_stats

pytestmark = pytest.mark.django_db


def _old(recording, days=500):
    Recording.objects.for_tenant(recording.tenant).filter(pk=recording.pk).update(
        created_at=timezone.now() - timedelta(days=days)
    )


def _at_twilio(sandbox, tenant, call):
    return sandbox.recording_create(tenant.account_sid, call.sid)["sid"]


def test_retention_deletes_old_recordings_here_and_at_twilio(
    twilio_tenant, sandbox, django_capture_on_commit_callbacks
):
    tenant = twilio_tenant
    old_call, new_call = CallFactory(tenant=tenant, spoken_message="Hi"), CallFactory(tenant=tenant)
    old = RecordingFactory(call=old_call, sid=_at_twilio(sandbox, tenant, old_call))
    new = RecordingFactory(call=new_call, sid=_at_twilio(sandbox, tenant, new_call))
    _old(old)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = retention_purge_tenant(tenant=tenant)
    assert report.purged >= 1
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.deleted_at is not None and new.deleted_at is None
    assert Call.objects.for_tenant(tenant).get(pk=old_call.pk).spoken_message == ""
    # After commit, the task deletes it at Twilio (run inline here).
    from voice.tasks import recordings_delete_task

    assert callbacks  # the deletion at Twilio is queued
    assert recordings_delete_task(tenant.pk, [old.sid]) == {"deleted": 1, "failed": 0}
    assert old.sid not in sandbox._recordings and new.sid in sandbox._recordings


def test_legal_hold_keeps_recordings(tenant):
    held = RecordingFactory(call=CallFactory(tenant=tenant, legal_hold=True))
    _old(held)
    retention_purge_tenant(tenant=tenant)
    held.refresh_from_db()
    assert held.deleted_at is None
    tenant.legal_hold = True
    tenant.save(update_fields=["legal_hold"])
    other = RecordingFactory(call=CallFactory(tenant=tenant))
    _old(other)
    retention_purge_tenant(tenant=tenant)
    other.refresh_from_db()
    assert other.deleted_at is None


def test_erasure_redacts_calls_and_deletes_their_recordings(tenant, other_tenant):
    call = CallFactory(tenant=tenant, from_number=CALLER, failure_reason=f"Twilio refused {CALLER}")
    CallEvent.objects.create(
        tenant=tenant,
        call=call,
        status="completed",
        occurred_at=timezone.now(),
        payload={"From": CALLER, "FromCity": "SF"},
    )
    recording = RecordingFactory(call=call)
    kept = CallFactory(tenant=tenant, from_number="+14155550999")
    theirs = CallFactory(tenant=other_tenant, from_number=CALLER)
    result = number_erase(tenant=tenant, phone=CALLER, reason="GDPR request 7", audit=SYSTEM, at_twilio=False)
    call.refresh_from_db()
    assert call.from_number == result.marker and CALLER not in call.failure_reason
    event = CallEvent.objects.for_tenant(tenant).get(call=call)
    assert event.payload == {"From": result.marker}
    recording.refresh_from_db()
    assert recording.deleted_at is not None
    assert result.counts["calls"] == 1 and result.counts["recordings"] == 1
    assert Call.objects.for_tenant(tenant).get(pk=kept.pk).from_number == "+14155550999"
    assert Call.objects.for_tenant(other_tenant).get(pk=theirs.pk).from_number == CALLER


def test_deleted_recording_is_not_streamed(client, tenant, tenant_admin):
    recording = RecordingFactory(call=CallFactory(tenant=tenant), deleted_at=timezone.now())
    client.force_login(tenant_admin)
    url = reverse("recording_audio", kwargs={"tenant_slug": tenant.slug, "recording_id": recording.pk})
    assert client.get(url).status_code == 404


def test_call_stats_count_answered_missed_voicemail_and_average(tenant, other_tenant):
    CallFactory(tenant=tenant, status="completed", duration=30)
    CallFactory(tenant=tenant, status="completed", duration=90)
    RecordingFactory(call=CallFactory(tenant=tenant, status="completed", duration=60))
    CallFactory(tenant=tenant, status="no-answer", duration=0)
    CallFactory(tenant=tenant, status="canceled", duration=None)
    CallFactory(tenant=tenant, direction="outbound", status="busy")
    CallFactory(tenant=other_tenant, status="completed")
    stats = call_stats(tenant=tenant, since=timezone.now() - timedelta(days=1))
    assert (stats.answered, stats.missed, stats.voicemail, stats.outbound) == (2, 2, 1, 1)
    assert stats.average_duration == 60 and stats.average_duration_display == "1:00"


def test_dashboard_shows_the_calls_panel(client, tenant, tenant_admin):
    CallFactory(tenant=tenant, status="no-answer")
    client.force_login(tenant_admin)
    page = client.get(
        reverse("tenant_dashboard", kwargs={"tenant_slug": tenant.slug}), {"range": "7d"}
    ).content.decode()
    assert 'data-stat="calls-missed">1<' in page


def test_number_history_lists_the_numbers_calls_masked_for_support(client, tenant, support_user):
    call = CallFactory(tenant=tenant, from_number=CALLER)
    CallFactory(tenant=tenant, from_number="+14155550999")
    client.force_login(support_user)
    page = client.get(reverse("number_history", kwargs={"tenant_slug": tenant.slug, "number": CALLER})).content.decode()
    assert reverse("call_detail", kwargs={"tenant_slug": tenant.slug, "call_id": call.pk}) in page
    assert "+14155550999" not in page and "+1******0999" not in page


def test_calls_lookup_opens_the_log_by_reference(client, tenant, tenant_admin):
    call = CallFactory(tenant=tenant, from_number=CALLER)
    CallFactory(tenant=tenant, from_number="+14155550999")
    client.force_login(tenant_admin)
    response = client.get(reverse("number_list", kwargs={"tenant_slug": tenant.slug}), {"call_phone": CALLER})
    location = response["Location"]
    assert response.status_code == 302 and "calls/?number=" in location and "4155550123" not in location
    page = client.get(location)
    assert [c.pk for c in page.context["page"].rows] == [call.pk]
    tampered = client.get(reverse("call_list", kwargs={"tenant_slug": tenant.slug}), {"number": "junk"})
    assert list(tampered.context["page"].rows) == []
