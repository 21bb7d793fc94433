"""The call log pages, the export and recordings: tenant isolation, support masking, the
audited unmask before support staff play a recording, audio streamed with Range support."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from tenants.models import AuditEvent
from tests.voice.factories import CALLER, CallFactory, RecordingFactory, flow_version_create
from voice.models import Call

pytestmark = pytest.mark.django_db


def url(name, tenant, **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def test_list_shows_only_this_tenants_calls_and_filters(client, tenant, other_tenant, tenant_admin):
    mine = CallFactory(tenant=tenant, status="completed", direction="inbound")
    CallFactory(tenant=tenant, status="busy", direction="outbound", to_number="+14155550999")
    theirs = CallFactory(tenant=other_tenant)
    client.force_login(tenant_admin)
    page = client.get(url("call_list", tenant)).content.decode()
    assert url("call_detail", tenant, call_id=mine.pk) in page
    assert f"/calls/{theirs.pk}/" not in page
    filtered = client.get(url("call_list", tenant), {"status": "busy", "direction": "outbound"}).content.decode()
    assert url("call_detail", tenant, call_id=mine.pk) not in filtered
    by_number = client.get(url("call_list", tenant), {"phone": "+14155550999"}).content.decode()
    assert url("call_detail", tenant, call_id=mine.pk) not in by_number and "Busy" in by_number
    bad = client.get(url("call_list", tenant), {"created_from": "2026-02-01", "created_to": "2026-01-01"})
    assert "end date is before the start date" in bad.content.decode()


def test_keyset_pages_walk_every_call_once(client, tenant, tenant_admin):
    calls = {CallFactory(tenant=tenant).pk for _ in range(55)}
    client.force_login(tenant_admin)
    first = client.get(url("call_list", tenant))
    seen = {c.pk for c in first.context["page"].rows}
    second = client.get(url("call_list", tenant), {"cursor": first.context["page"].older_cursor})
    seen |= {c.pk for c in second.context["page"].rows}
    assert seen == calls and second.context["page"].older_cursor is None


def test_detail_timeline_menu_path_and_masking(client, tenant, other_admin, support_user, post_status):
    call = CallFactory(tenant=tenant, menu_path=[{"step": "menu", "digits": "2"}, {"step": "voicemail"}])
    client.force_login(support_user)
    page = client.get(url("call_detail", tenant, call_id=call.pk)).content.decode()
    assert "pressed 2" in page and "voicemail" in page
    assert CALLER not in page and "+1******0123" in page
    client.force_login(other_admin)
    assert client.get(url("call_detail", tenant, call_id=call.pk)).status_code == 404


def test_export_has_the_exact_columns_is_isolated_masked_and_audited(client, tenant, other_tenant, support_user):
    mine = CallFactory(tenant=tenant, duration=61)
    CallFactory(tenant=other_tenant)
    client.force_login(support_user)
    response = client.get(url("call_export", tenant))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["sid", "direction", "from", "to", "status", "duration", "created_at"]
    assert len(rows) == 2
    assert rows[1][:6] == [mine.sid, "inbound", "+1******0123", "+1******0100", "completed", "61"]
    assert rows[1][6].endswith("Z")
    assert AuditEvent.objects.filter(tenant=tenant, action="export.calls").count() == 1


# --- Recordings ------------------------------------------------------------------------------


@pytest.fixture
def held_recording(twilio_tenant, sandbox):
    call = CallFactory(tenant=twilio_tenant)
    at_twilio = sandbox.recording_create(twilio_tenant.account_sid, call.sid, duration=3)
    return RecordingFactory(call=call, sid=at_twilio["sid"], media_url="https://api.twilio.com/secret-path")


def test_admin_plays_a_recording_streamed_with_range(client, tenant_admin, held_recording):
    tenant = held_recording.tenant
    client.force_login(tenant_admin)
    detail = client.get(url("call_detail", tenant, call_id=held_recording.call_id)).content.decode()
    audio_url = url("recording_audio", tenant, recording_id=held_recording.pk)
    assert audio_url in detail and "api.twilio.com" not in detail and "secret-path" not in detail
    whole = client.get(audio_url)
    body = b"".join(whole.streaming_content)
    assert whole.status_code == 200 and whole["Content-Type"] == "audio/mpeg" and body[:2] == b"\xff\xfb"
    assert "private" in whole["Cache-Control"] and "no-store" in whole["Cache-Control"]
    part = client.get(audio_url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{len(body)}"
    assert b"".join(part.streaming_content) == body[100:200]


def test_recordings_denied_to_anonymous_other_tenants_and_support_without_unmask(
    client, other_admin, support_user, held_recording
):
    tenant = held_recording.tenant
    audio_url = url("recording_audio", tenant, recording_id=held_recording.pk)
    response = client.get(audio_url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(other_admin)
    assert client.get(audio_url).status_code == 404
    assert (
        client.get(
            url("recording_audio", other_admin.memberships.first().tenant, recording_id=held_recording.pk)
        ).status_code
        == 404
    )
    client.force_login(support_user)
    assert client.get(audio_url).status_code == 403
    detail = client.get(url("call_detail", tenant, call_id=held_recording.call_id)).content.decode()
    assert audio_url not in detail and url("recording_unmask", tenant, recording_id=held_recording.pk) in detail


def test_support_unmasks_with_a_reason_then_plays(client, support_user, held_recording):
    tenant = held_recording.tenant
    unmask_url = url("recording_unmask", tenant, recording_id=held_recording.pk)
    client.force_login(support_user)
    assert client.post(unmask_url, {"reason": "short"}).status_code == 200  # too short: refused, nothing granted
    assert client.get(url("recording_audio", tenant, recording_id=held_recording.pk)).status_code == 403
    assert not AuditEvent.objects.filter(action="support.unmask_recording").exists()
    assert client.post(unmask_url, {"reason": "Ticket 812: customer disputes the voicemail"}).status_code == 200
    event = AuditEvent.objects.get(action="support.unmask_recording")
    assert event.tenant == tenant and "Ticket 812" in event.reason
    played = client.get(url("recording_audio", tenant, recording_id=held_recording.pk))
    assert played.status_code == 200 and b"".join(played.streaming_content)


def test_admins_do_not_unmask(client, tenant_admin, held_recording):
    client.force_login(tenant_admin)
    unmask = url("recording_unmask", held_recording.tenant, recording_id=held_recording.pk)
    assert client.post(unmask, {"reason": "Ticket 812: customer disputes"}).status_code == 403


def test_recording_gone_at_twilio_is_404(client, tenant_admin, twilio_tenant, sandbox):
    recording = RecordingFactory(call=CallFactory(tenant=twilio_tenant))
    client.force_login(tenant_admin)
    assert client.get(url("recording_audio", twilio_tenant, recording_id=recording.pk)).status_code == 404


# --- Placing calls ---------------------------------------------------------------------------


def test_place_a_call_form_creates_an_audited_call(client, tenant, tenant_admin):
    from tests.tenants.factories import PhoneNumberFactory

    PhoneNumberFactory(tenant=tenant, phone_number="+14155550101", voice=True)
    client.force_login(tenant_admin)
    response = client.post(
        url("call_place", tenant),
        {
            "to": "+442079460000",
            "from_number": "+14155550101",
            "purpose": "transactional",
            "message": "Your order is ready",
        },
    )
    call = Call.objects.for_tenant(tenant).get()
    assert response.status_code == 302 and response["Location"] == url("call_detail", tenant, call_id=call.pk)
    assert (call.status, call.spoken_message, call.created_by) == ("pending", "Your order is ready", tenant_admin)
    assert AuditEvent.objects.filter(tenant=tenant, action="call.place").count() == 1
    refused = client.post(
        url("call_place", tenant), {"to": "+442079460000", "from_number": "+14155550101", "purpose": "transactional"}
    )
    assert refused.status_code == 200 and "one of the two" in refused.content.decode()


def test_place_a_call_to_a_mobile_without_consent_is_blocked(client, tenant, tenant_admin):
    from tests.tenants.factories import PhoneNumberFactory

    PhoneNumberFactory(tenant=tenant, phone_number="+14155550101", voice=True)
    client.force_login(tenant_admin)
    client.post(
        url("call_place", tenant),
        {"to": "+14155550177", "from_number": "+14155550101", "purpose": "informational", "message": "Hello"},
    )
    call = Call.objects.for_tenant(tenant).get()
    assert (call.status, call.gate_reason) == ("blocked", "no_consent")


def test_test_call_rings_the_admins_phone_with_the_flow(client, tenant, other_tenant, tenant_admin):
    version = flow_version_create(tenant)
    theirs = flow_version_create(other_tenant, phone_number="+14155550111")
    client.force_login(tenant_admin)
    response = client.post(url("call_test", tenant), {"to": "+14155550177", "flow_version": version.pk})
    call = Call.objects.for_tenant(tenant).get()
    assert response.status_code == 302
    assert (call.flow_version, call.from_number, call.status, call.callee_requested) == (
        version,
        "+14155550100",
        "pending",
        True,
    )
    assert AuditEvent.objects.filter(tenant=tenant, action="call.test").count() == 1
    assert client.post(url("call_test", tenant), {"to": "+14155550177", "flow_version": theirs.pk}).status_code == 404


def test_a_call_not_final_yet_follows_its_status(client, tenant, other_admin, tenant_admin):
    call = CallFactory(tenant=tenant, status="ringing")
    client.force_login(tenant_admin)
    page = client.get(url("call_detail", tenant, call_id=call.pk)).content.decode()
    assert url("call_status", tenant, call_id=call.pk) in page and "js/message_status.js" in page
    assert client.get(url("call_status", tenant, call_id=call.pk)).json()["status"] == "ringing"
    client.force_login(other_admin)
    assert client.get(url("call_status", tenant, call_id=call.pk)).status_code == 404


def test_the_flow_editor_offers_admins_a_test_call_of_the_current_version(client, tenant, tenant_admin, viewer):
    from tenants.audit import SYSTEM
    from tests.tenants.factories import PhoneNumberFactory
    from voice.flows.schema import default_definition
    from voice.flows.services import call_flow_save

    number = PhoneNumberFactory(tenant=tenant, phone_number="+14155550160", voice=True)
    call_flow_save(tenant=tenant, number=number, name="Main", definition=default_definition(), audit=SYSTEM)
    version = number.call_flow.current_version
    client.force_login(tenant_admin)
    page = client.get(url("call_flow_edit", tenant, number_id=number.pk)).content.decode()
    assert url("call_test", tenant) in page and f'name="flow_version" value="{version.pk}"' in page
    response = client.post(url("call_test", tenant), {"to": "+14155550177", "flow_version": version.pk})
    assert response.status_code == 302
    call = Call.objects.for_tenant(tenant).get()
    assert (call.flow_version, call.from_number) == (version, "+14155550160")
    client.force_login(viewer)
    assert (
        url("call_test", tenant) not in client.get(url("call_flow_edit", tenant, number_id=number.pk)).content.decode()
    )
