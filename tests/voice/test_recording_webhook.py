"""Recording status callbacks stored once per RecordingSid; the price fetch queued when a call
turns final; the voice beat job installed; tasks registered under their stable names."""

from __future__ import annotations

import pytest

from tests.tenants.factories import random_sid
from tests.voice.callbacks import call_callback, recording_callback
from tests.voice.factories import CallFactory
from voice.models import Call, Recording

pytestmark = pytest.mark.django_db


def test_recording_stored_once_and_linked_to_its_call(tenant, post_recording):
    call = CallFactory(tenant=tenant)
    sid = random_sid("RE")
    assert post_recording(recording_callback(tenant, call.sid, sid, status="in-progress")).status_code == 204
    assert post_recording(recording_callback(tenant, call.sid, sid)).status_code == 204
    assert post_recording(recording_callback(tenant, call.sid, sid, status="in-progress")).status_code == 204
    recording = Recording.objects.for_tenant(tenant).get()
    assert (recording.sid, recording.call, recording.status, recording.duration) == (sid, call, "completed", 7)
    assert (recording.channels, recording.source) == (1, "RecordVerb")


def test_recording_before_any_status_callback_creates_its_call(tenant, post_recording, post_status):
    call_sid, sid = random_sid("CA"), random_sid("RE")
    post_recording(recording_callback(tenant, call_sid, sid))
    call = Call.objects.for_tenant(tenant).get(sid=call_sid)
    assert call.status == "in-progress" and Recording.objects.for_tenant(tenant).get().call == call
    post_status(call_callback(tenant, call_sid, "completed", 3, CallDuration="20"))
    call.refresh_from_db()
    assert (call.status, call.duration) == ("completed", 20)


def test_another_tenants_recording_sid_is_left_alone(tenant, other_tenant, post_recording):
    theirs = CallFactory(tenant=other_tenant)
    sid = random_sid("RE")
    Recording.objects.create(tenant=other_tenant, sid=sid, call=theirs, call_sid=theirs.sid, status="completed")
    assert post_recording(recording_callback(tenant, random_sid("CA"), sid)).status_code == 204
    assert not Recording.objects.for_tenant(tenant).exists()
    assert Recording.objects.for_tenant(other_tenant).get(sid=sid).call == theirs


@pytest.mark.parametrize(
    "field,value,status",
    [
        ("RecordingSid", "RE" + "0" * 40, 400),
        ("RecordingSid", "\x00", 400),
        ("CallSid", "CA-nope", 400),
        ("RecordingDuration", "99999999999999999999999", 204),
        ("RecordingChannels", "40000", 204),
        ("RecordingSource", "x" * 500, 204),
        ("RecordingStatus", "\x00" * 40, 204),
        ("RecordingUrl", "https://example.com/" + "a" * 400, 204),
    ],
)
def test_hostile_recording_fields(tenant, post_recording, field, value, status):
    params = recording_callback(tenant, random_sid("CA"), random_sid("RE"), **{field: value})
    assert post_recording(params).status_code == status


def test_a_call_turning_final_queues_its_price_fetch_once(
    tenant, post_status, call_sid, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as ringing:
        post_status(call_callback(tenant, call_sid, "ringing", 1))
    with django_capture_on_commit_callbacks(execute=False) as completed:
        post_status(call_callback(tenant, call_sid, "completed", 3, CallDuration="4"))
    with django_capture_on_commit_callbacks(execute=False) as late:
        post_status(call_callback(tenant, call_sid, "in-progress", 2))
        post_status(call_callback(tenant, call_sid, "completed", 3, CallDuration="4"))
    assert (len(ringing), len(completed), len(late)) == (0, 1, 0)


def test_voice_jobs_are_scheduled_and_tasks_named():
    from django_celery_beat.models import PeriodicTask

    from commsportal.celery import app
    from tenants.schedules import schedules_install

    schedules_install()
    assert PeriodicTask.objects.filter(task="voice.tasks.calls_resync_task").exists()
    app.loader.import_default_modules()
    for name in (
        "voice.tasks.call_dial_task",
        "voice.tasks.call_price_fetch_task",
        "voice.tasks.calls_resync_task",
        "voice.tasks.recordings_delete_task",
    ):
        assert name in app.tasks
