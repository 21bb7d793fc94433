"""Bulk sends: CSV validation, the preview's counts, launch, pause/resume/cancel, progress and
the paced dispatcher (against the local Twilio sandbox)."""

from __future__ import annotations

import json
import time
from datetime import time as wall_time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from messaging.compliance.policy import sending_policy_get
from messaging.delivery.attempts import DeliveryRetry, message_deliver
from messaging.delivery.bulk import dispatch as dispatch_module
from messaging.delivery.bulk import lifecycle as bulk_lifecycle
from messaging.delivery.bulk import upload as bulk_module
from messaging.delivery.bulk.dispatch import _DispatchLock, bulk_dispatch, bulks_to_dispatch
from messaging.delivery.bulk.lifecycle import (
    bulk_cancel,
    bulk_launch,
    bulk_pause,
    bulk_progress,
    bulk_queue,
    bulk_resume,
    bulks_to_queue,
)
from messaging.delivery.bulk.upload import bulk_csv_read, bulk_preview
from messaging.ledgers.services import opt_out_record
from messaging.models import BulkSend, Message
from messaging.monitoring import SERIES
from messaging.statuses import COUNT_LABELS
from tenants.audit import SYSTEM
from tenants.models import AuditEvent
from tenants.twilio import TwilioError
from tests.messaging.factories import BulkSendFactory, MessageTemplateFactory
from tests.messaging.sending_support import NY, NY_2, SENDER, SF, grant_marketing, sandbox_messages, sent_marketing

pytestmark = pytest.mark.django_db

BODY = "Hi {{first_name}}, your table is booked for {{when}}."


def url(name, tenant, **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def all_day(tenant, **fields) -> None:
    """A policy whose window is open whatever the wall clock says (tests run at any hour)."""
    policy = sending_policy_get(tenant=tenant)
    policy.quiet_start, policy.quiet_end = wall_time(0, 0), wall_time(23, 59, 59, 999999)
    policy.messages_per_second = 100.0  # tests should not wait on pacing
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.save()


@pytest.fixture
def template(tenant):
    return MessageTemplateFactory(tenant=tenant, name="Booking", purpose="transactional", body=BODY)


def csv_bytes(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def make_draft(tenant, template, rows, *, purpose=None, sender=SENDER, name="Spring") -> BulkSend:
    upload = bulk_csv_read(content=csv_bytes("phone,first_name,when", *rows), body=template.body)
    assert not upload.file_errors, upload.file_errors
    return bulk_module.bulk_draft_create(
        tenant=tenant,
        name=name,
        template=template,
        purpose=purpose or template.purpose,
        sender=sender,
        upload=upload,
        audit=SYSTEM,
    )


# --- CSV validation -------------------------------------------------------------------------------


def test_csv_rows_are_normalised_checked_and_collapsed():
    upload = bulk_csv_read(
        content=csv_bytes(
            "Phone,First Name,When,Notes",
            "+1 (212) 555-0123,Ana,Tue 10:00,vip",
            "2125550145,Ben,Wed 14:30,",  # US default region
            "not a number,Cy,Thu,",
            "+12125550123,Ana again,Fri,",  # same number as line 2: collapsed
            "+14155550123,,Sat,",  # missing first_name
            "",
            "+14155550188,Dee,Sun",  # short row: the missing trailing cell is just empty
        ),
        body=BODY,
        region="US",  # the tenant's: national numbers read as US ones
    )
    assert upload.file_errors == []
    assert upload.columns == ["phone", "first_name", "when", "notes"]
    assert upload.ignored_columns == ["notes"]
    assert upload.recipients == [
        ["+12125550123", ["Ana", "Tue 10:00"]],
        ["+12125550145", ["Ben", "Wed 14:30"]],
        ["+14155550188", ["Dee", "Sun"]],
    ]
    assert upload.rows_read == 6 and upload.duplicates == 1 and upload.error_count == 2
    assert [(e["line"], e["value"]) for e in upload.errors] == [(4, "not a number"), (6, "+14155550123")]
    assert "not a phone number" in upload.errors[0]["message"]
    assert upload.errors[1]["message"] == "Missing first_name for the template."


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty"),
        (b"number,first_name,when\n+12125550123,A,B\n", "No “phone” column"),
        (b"phone,first_name\n+12125550123,A\n", "{{when}} but the file has no column when"),
        (b"phone,phone,first_name,when\n", "named twice: phone"),
        ("phone,first_name,when\n+12125550123,Zoë,x\n".encode("latin-1"), "not UTF-8"),
        (b"phone,first_name,when\nnope,A,B\n", "No row can be sent"),
    ],
)
def test_csv_file_errors(content, fragment):
    upload = bulk_csv_read(content=content, body=BODY)
    assert any(fragment in e for e in upload.file_errors), upload.file_errors
    assert upload.recipients == [] or upload.file_errors


def test_csv_semicolons_and_bom_and_row_limit(monkeypatch):
    content = "\ufeffphone;first_name;when\n+12125550123;Zoë;mañana\n".encode()
    upload = bulk_csv_read(content=content, body=BODY)
    assert upload.recipients == [["+12125550123", ["Zoë", "mañana"]]]
    monkeypatch.setattr(bulk_module, "MAX_RECIPIENTS", 1)
    upload = bulk_csv_read(content=csv_bytes("phone,first_name,when", f"{NY},a,b", f"{NY_2},c,d"), body=BODY)
    assert "More than 1 rows" in upload.file_errors[0] and upload.recipients == []


def test_csv_body_over_twilios_limit_is_a_row_error():
    upload = bulk_csv_read(
        content=csv_bytes("phone,first_name,when", f"{NY},{'x' * 1600},now", f"{NY_2},Ben,now"), body=BODY
    )
    assert [r[0] for r in upload.recipients] == [NY_2]
    assert "Twilio takes 1,600" in upload.errors[0]["message"]


# --- upload and preview pages -------------------------------------------------------------------------


def upload_post(client, tenant, template, content: bytes, **fields):
    data = {
        "name": "Spring",
        "template": template.id,
        "purpose": template.purpose,
        "sender": SENDER,
        "csv_file": SimpleUploadedFile("list.csv", content, content_type="text/csv"),
    }
    data.update(fields)
    return client.post(url("bulk_create", tenant), data)


def test_admin_uploads_a_draft_and_lands_on_the_preview(client, tenant, tenant_admin, template):
    all_day(tenant)
    client.force_login(tenant_admin)
    content = csv_bytes("phone,first_name,when", f"{NY},Ana,Tue", "bad,Ben,Wed", f"{NY},Ana,dup")
    response = upload_post(client, tenant, template, content)
    bulk = BulkSend.objects.for_tenant(tenant).get()
    assert response.status_code == 302 and response["Location"] == url("bulk_preview", tenant, bulk_id=bulk.id)
    assert bulk.status == "draft" and bulk.total_recipients == 1 and bulk.sender == SENDER
    assert bulk.upload["body"] == BODY and bulk.upload["error_count"] == 1 and bulk.upload["duplicates"] == 1
    assert AuditEvent.objects.filter(tenant=tenant, action="bulk.draft").exists()
    assert not Message.objects.for_tenant(tenant).exists()  # nothing queued before launch

    page = client.get(response["Location"]).content.decode()
    assert "Hi Ana, your table is booked for Tue." in page
    assert "Rows left out" in page and "bad" in page
    assert "Launch: send 1 message" in page


def test_upload_form_errors(client, tenant, tenant_admin, template):
    client.force_login(tenant_admin)
    wrong_purpose = upload_post(client, tenant, template, csv_bytes("phone,first_name,when"), purpose="marketing")
    assert "is a transactional template" in wrong_purpose.content.decode()
    no_sender = upload_post(client, tenant, template, csv_bytes("phone,first_name,when", f"{NY},A,B"), sender="")
    assert no_sender.status_code == 200 and "This field is required" in no_sender.content.decode()
    missing = upload_post(client, tenant, template, csv_bytes("phone,first_name", f"{NY},A"))
    assert "{{when}} but the file has no column when" in missing.content.decode()
    all_bad = upload_post(client, tenant, template, csv_bytes("phone,first_name,when", "x,A,B"))
    page = all_bad.content.decode()
    assert "No row can be sent" in page and "Rows left out" in page
    assert not BulkSend.objects.for_tenant(tenant).exists()


def test_sender_is_optional_with_a_messaging_service(client, tenant, tenant_admin, template):
    tenant.messaging_service_sid = "MG" + "a" * 32
    tenant.save()
    client.force_login(tenant_admin)
    response = upload_post(client, tenant, template, csv_bytes("phone,first_name,when", f"{NY},A,B"), sender="")
    assert response.status_code == 302
    assert BulkSend.objects.for_tenant(tenant).get().sender == ""


def test_other_tenants_template_cannot_be_chosen(client, tenant, other_tenant, tenant_admin):
    theirs = MessageTemplateFactory(tenant=other_tenant, name="T", purpose="transactional", body="x")
    client.force_login(tenant_admin)
    response = upload_post(client, tenant, theirs, csv_bytes("phone", NY))
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()


def test_preview_counts_segments_encodings_and_gate_verdicts(tenant):
    all_day(tenant, frequency_cap=1)
    marketing = MessageTemplateFactory(tenant=tenant, name="Sale", purpose="marketing", body="Hi {{name}}")
    consenting = ["+12125550123", "+12125550145", "+14155550123", "+14155550188"]
    for phone in consenting:
        grant_marketing(tenant, phone)
    opt_out_record(tenant=tenant, phone="+14155550188", source="admin")
    sent_marketing(tenant, "+14155550123", accepted_at=timezone.now() - timedelta(hours=1))  # capped
    rows = [
        "+12125550123,Ana",  # sent: GSM-7, 1 segment
        "+12125550145,Çelik",  # sent: Ç is GSM-7
        "+14155550123,Zoé",  # deferred: frequency cap
        "+14155550188,Bob",  # blocked: opted out
        "+13055550123,Ça va ç",  # blocked: no consent; ç is UCS-2
        "+12125550199," + "x" * 200,  # blocked: no consent; 2 segments
    ]
    upload = bulk_csv_read(content=csv_bytes("phone,name", *rows), body=marketing.body)
    bulk = bulk_module.bulk_draft_create(
        tenant=tenant, name="B", template=marketing, purpose="marketing", sender=SENDER, upload=upload, audit=SYSTEM
    )
    preview = bulk_preview(bulk=bulk, samples=2)
    assert (preview.recipients, preview.send_now, preview.deferred, preview.blocked) == (6, 2, 1, 3)
    assert preview.blocked_by_reason == [("No marketing consent", 2), ("Opted out", 1)]
    assert preview.deferred_by_reason == [("Frequency cap", 1)]
    assert preview.encodings == {"GSM-7": 5, "UCS-2": 1} and preview.ucs2 == 1
    assert preview.segments_histogram == [(1, 5), (2, 1)]
    assert preview.segments_total == 3  # the three that go (now or later), one segment each
    assert preview.segments_all == 7
    assert [s.body for s in preview.samples] == ["Hi Ana", "Hi Çelik"]
    assert preview.longest.segments == 2 and preview.longest.phone == "+12125550199"


def test_preview_makes_a_bounded_number_of_queries(tenant, template, django_assert_max_num_queries):
    all_day(tenant)
    rows = [f"+1212555{i:04d},N{i},now" for i in range(300)]
    bulk = make_draft(tenant, template, rows)
    with django_assert_max_num_queries(10):
        bulk_preview(bulk=bulk)


def test_preview_is_for_admins_and_only_drafts(client, tenant, tenant_admin, viewer, template):
    all_day(tenant)
    bulk = make_draft(tenant, template, [f"{NY},Ana,Tue"])
    client.force_login(viewer)
    assert client.get(url("bulk_preview", tenant, bulk_id=bulk.id)).status_code == 403
    client.force_login(tenant_admin)
    bulk_launch(bulk=bulk, audit=SYSTEM)
    response = client.get(url("bulk_preview", tenant, bulk_id=bulk.id))
    assert response.status_code == 302 and response["Location"] == url("bulk_detail", tenant, bulk_id=bulk.id)


# --- launch and queueing --------------------------------------------------------------------------------


def test_launch_queues_through_the_gate_and_drops_the_stored_rows(
    client, tenant, tenant_admin, template, django_capture_on_commit_callbacks
):
    all_day(tenant)
    opt_out_record(tenant=tenant, phone=NY_2, source="admin")
    bulk = make_draft(tenant, template, [f"{NY},Ana,Tue", f"{NY_2},Ben,Wed", f"{SF},Cy,Thu"])
    BulkSend.objects.for_tenant(tenant).filter(pk=bulk.pk).update(created_by=tenant_admin)
    client.force_login(tenant_admin)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url("bulk_launch", tenant, bulk_id=bulk.id))
    assert response.status_code == 302 and response["Location"] == url("bulk_detail", tenant, bulk_id=bulk.id)
    bulk.refresh_from_db()
    assert bulk.status == "running" and bulk.launched_at is not None
    assert "recipients" not in bulk.upload and "errors" not in bulk.upload
    assert bulk.upload["queued"] == 3 and bulk.upload["queued_counts"]["block"] == 1
    messages = Message.objects.for_tenant(tenant).filter(bulk_send=bulk).order_by("id")
    assert [(m.to_number, m.status) for m in messages] == [(NY, "pending"), (NY_2, "blocked"), (SF, "pending")]
    assert messages[0].body == "Hi Ana, your table is booked for Tue."
    assert messages[0].from_number == SENDER and messages[0].created_by == tenant_admin
    assert AuditEvent.objects.filter(tenant=tenant, action="bulk.launch").count() == 1
    assert len(callbacks) == 1  # the dispatcher is kicked once the launch commits
    # Idempotent: queueing again (a redelivered task) and launching again do nothing.
    assert bulk_queue(bulk_id=bulk.id) == {}
    assert client.post(url("bulk_launch", tenant, bulk_id=bulk.id), follow=True).status_code == 200
    assert messages.count() == 3


def test_big_launch_queues_in_a_task(tenant, template, monkeypatch, django_capture_on_commit_callbacks):
    all_day(tenant)
    monkeypatch.setattr(bulk_lifecycle, "INLINE_QUEUE_MAX", 1)
    bulk = make_draft(tenant, template, [f"{NY},Ana,Tue", f"{NY_2},Ben,Wed"])
    queued = []
    monkeypatch.setattr("messaging.tasks.bulk.bulk_queue_task.delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        bulk_launch(bulk=bulk, audit=SYSTEM)
    assert queued == [bulk.id]
    assert bulks_to_queue() == [bulk.id] and bulks_to_dispatch() == []
    assert bulk_progress(tenant=tenant, bulk=BulkSend.objects.for_tenant(tenant).get())["awaiting_queue"] == 2
    with django_capture_on_commit_callbacks():
        assert bulk_queue(bulk_id=bulk.id)["total"] == 2
    assert bulks_to_queue() == [] and bulks_to_dispatch() == [bulk.id]


def test_launch_refused_for_a_suspended_tenant(tenant, template):
    bulk = make_draft(tenant, template, [f"{NY},Ana,Tue"])
    tenant.status = "suspended"
    tenant.save()
    bulk = BulkSend.objects.for_tenant(tenant).get(pk=bulk.pk)
    with pytest.raises(Exception, match="suspended"):
        bulk_launch(bulk=bulk, audit=SYSTEM)
    bulk.refresh_from_db()
    assert bulk.status == "draft"


# --- pause, resume, cancel, progress ----------------------------------------------------------------------


@pytest.fixture
def running(tenant, template, django_capture_on_commit_callbacks):
    all_day(tenant)
    bulk = make_draft(tenant, template, [f"{NY},Ana,Tue", f"{NY_2},Ben,Wed", f"{SF},Cy,Thu"])
    with django_capture_on_commit_callbacks():
        return bulk_launch(bulk=bulk, audit=SYSTEM)


def test_pause_resume_cancel_through_the_pages(
    client, tenant, tenant_admin, running, django_capture_on_commit_callbacks
):
    client.force_login(tenant_admin)
    detail = url("bulk_detail", tenant, bulk_id=running.id)
    assert client.post(url("bulk_pause", tenant, bulk_id=running.id))["Location"] == detail
    running.refresh_from_db()
    assert running.status == "paused"
    assert bulks_to_dispatch() == []
    with django_capture_on_commit_callbacks() as callbacks:
        client.post(url("bulk_resume", tenant, bulk_id=running.id))
    running.refresh_from_db()
    assert running.status == "running" and len(callbacks) == 1

    # One message is with a worker right now (live lease): cancel leaves it to finish.
    first = Message.objects.for_tenant(tenant).filter(bulk_send=running).order_by("id").first()
    Message.all_tenants.filter(pk=first.pk).update(
        send_claim="w1", send_claimed_until=timezone.now() + timedelta(minutes=1)
    )
    response = client.post(url("bulk_cancel", tenant, bulk_id=running.id), follow=True)
    assert "2 pending messages will not be sent" in response.content.decode()
    running.refresh_from_db()
    assert running.status == "cancelled" and running.finished_at is not None
    statuses = dict(Message.objects.for_tenant(tenant).filter(bulk_send=running).values_list("to_number", "status"))
    assert statuses == {NY: "pending", NY_2: "canceled", SF: "canceled"}
    actions = list(
        AuditEvent.objects.filter(tenant=tenant, action__startswith="bulk.").values_list("action", flat=True)
    )
    assert {"bulk.pause", "bulk.resume", "bulk.cancel"} <= set(actions)
    cancel = AuditEvent.objects.get(action="bulk.cancel")
    assert cancel.details["canceled_messages"] == 2
    # Nothing further is possible on a cancelled send.
    response = client.post(url("bulk_resume", tenant, bulk_id=running.id), follow=True)
    assert "already" in response.content.decode() or "cancelled" in response.content.decode()


def test_wrong_transitions_are_refused(tenant, running):
    with pytest.raises(Exception, match="running"):
        bulk_resume(bulk=running, audit=SYSTEM)
    bulk_pause(bulk=running, audit=SYSTEM)
    with pytest.raises(Exception, match="paused"):
        bulk_pause(bulk=running, audit=SYSTEM)


def test_cancelling_a_draft_discards_its_rows(tenant, template):
    bulk = make_draft(tenant, template, [f"{NY},Ana,Tue"])
    assert bulk_cancel(bulk=bulk, audit=SYSTEM) == 0
    bulk.refresh_from_db()
    assert bulk.status == "cancelled" and "recipients" not in bulk.upload
    with pytest.raises(Exception, match="not a draft"):
        bulk_launch(bulk=bulk, audit=SYSTEM)


def test_progress_counts_in_one_grouped_query(client, tenant, viewer, running, django_assert_num_queries):
    rows = Message.objects.for_tenant(tenant).filter(bulk_send=running).order_by("id")
    Message.all_tenants.filter(pk=rows[0].pk).update(status="delivered")
    Message.all_tenants.filter(pk=rows[1].pk).update(gate_decision="defer")
    with django_assert_num_queries(1):
        progress = bulk_progress(tenant=tenant, bulk=running)
    assert progress["counts"] == {
        "pending": 1,
        "deferred": 1,
        "in_progress": 0,
        "delivered": 1,
        "undelivered": 0,
        "failed": 0,
        "blocked": 0,
        "canceled": 0,
    }
    assert progress["total"] == 3 and progress["done"] == 1 and progress["percent"] == 33.3

    client.force_login(viewer)
    response = client.get(url("bulk_progress", tenant, bulk_id=running.id))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    assert json.loads(response.content)["counts"]["delivered"] == 1
    page = client.get(url("bulk_detail", tenant, bulk_id=running.id)).content.decode()
    assert 'data-count="delivered">1<' in page and 'data-width="33.3' in page
    assert "Pause" not in page and "Cancel send" not in page  # viewers read only
    assert 'data-progress-url="' + url("bulk_progress", tenant, bulk_id=running.id) in page


def test_list_shows_counts_for_the_tenant_only(client, tenant, other_tenant, viewer, running, template):
    theirs_template = MessageTemplateFactory(tenant=other_tenant, name="X", purpose="otp", body="x")
    BulkSendFactory(tenant=other_tenant, name="Their campaign", template=theirs_template, purpose="otp")
    client.force_login(viewer)
    page = client.get(url("bulk_list", tenant)).content.decode()
    assert "Spring" in page and "Their campaign" not in page
    assert "New bulk send" not in page


def test_other_tenants_bulk_send_is_404(client, tenant, other_tenant, tenant_admin, template):
    theirs_template = MessageTemplateFactory(tenant=other_tenant, name="X", purpose="otp", body="x")
    theirs = BulkSendFactory(
        tenant=other_tenant, name="Theirs", template=theirs_template, purpose="otp", status="running"
    )
    client.force_login(tenant_admin)
    for name in ("bulk_detail", "bulk_progress", "bulk_preview"):
        assert client.get(url(name, tenant, bulk_id=theirs.id)).status_code == 404, name
    for name in ("bulk_pause", "bulk_cancel", "bulk_launch"):
        assert client.post(url(name, tenant, bulk_id=theirs.id)).status_code == 404, name
    theirs.refresh_from_db()
    assert theirs.status == "running"


# --- dispatch ---------------------------------------------------------------------------------------------


@pytest.fixture
def sandbox_running(twilio_tenant, template, django_capture_on_commit_callbacks):
    all_day(twilio_tenant)
    bulk = make_draft(twilio_tenant, template, [f"{NY},Ana,Tue", f"{NY_2},Ben,Wed", f"{SF},Cy,Thu"])
    with django_capture_on_commit_callbacks():
        return bulk_launch(bulk=bulk, audit=SYSTEM)


def test_dispatch_sends_in_id_order_and_completes(twilio_tenant, sandbox, sandbox_running):
    order = []

    def deliver(**kwargs):
        order.append(kwargs["message_id"])
        return message_deliver(**kwargs)

    result = bulk_dispatch(bulk_id=sandbox_running.id, deliver=deliver)
    ids = list(
        Message.objects.for_tenant(twilio_tenant)
        .filter(bulk_send=sandbox_running)
        .order_by("id")
        .values_list("id", flat=True)
    )
    assert order == ids and result.handed_over == 3 and result.outcomes == {"sent": 3}
    assert result.completed
    sandbox_running.refresh_from_db()
    assert sandbox_running.status == "completed" and sandbox_running.finished_at is not None
    for phone in (NY, NY_2, SF):
        assert len(sandbox_messages(sandbox, phone)) == 1
    assert bulk_progress(tenant=twilio_tenant, bulk=sandbox_running)["counts"]["in_progress"] == 3
    # Running again is harmless.
    assert bulk_dispatch(bulk_id=sandbox_running.id).handed_over == 0


@pytest.mark.parametrize("action", [bulk_pause, bulk_cancel])
def test_pause_or_cancel_stops_the_dispatcher_before_the_next_message(
    twilio_tenant, sandbox, sandbox_running, action, django_capture_on_commit_callbacks
):
    def deliver(**kwargs):
        outcome = message_deliver(**kwargs)
        action(
            bulk=BulkSend.objects.for_tenant(twilio_tenant).get(pk=sandbox_running.pk), audit=SYSTEM
        )  # an admin, meanwhile
        return outcome

    result = bulk_dispatch(bulk_id=sandbox_running.id, deliver=deliver)
    assert result.handed_over == 1 and not result.completed
    assert sum(len(sandbox_messages(sandbox, p)) for p in (NY, NY_2, SF)) == 1
    if action is bulk_pause:
        with django_capture_on_commit_callbacks():
            bulk_resume(bulk=BulkSend.objects.for_tenant(twilio_tenant).get(pk=sandbox_running.pk), audit=SYSTEM)
        assert bulk_dispatch(bulk_id=sandbox_running.id).handed_over == 2
        assert sum(len(sandbox_messages(sandbox, p)) for p in (NY, NY_2, SF)) == 3


def test_one_dispatcher_per_bulk_send(sandbox_running):
    lock = _DispatchLock(sandbox_running.id)
    assert lock.acquire()
    try:
        result = bulk_dispatch(bulk_id=sandbox_running.id)
        assert result.busy and result.handed_over == 0
    finally:
        lock.release()
    assert bulk_dispatch(bulk_id=sandbox_running.id).handed_over == 3


def test_a_dead_dispatchers_lock_lapses_within_seconds(sandbox_running, monkeypatch):
    """A holder that stops renewing (its worker was SIGKILLed) frees the bulk send after the
    lock's short lifetime; a live holder's heartbeat keeps it past that lifetime."""
    monkeypatch.setattr(dispatch_module, "DISPATCH_LOCK_RENEW_SECONDS", 0.1)
    live = _DispatchLock(sandbox_running.id, ttl=0.4)
    assert live.acquire()
    time.sleep(0.8)  # two lifetimes: only the heartbeat keeps it
    assert not _DispatchLock(sandbox_running.id, ttl=0.4).acquire() and not live.lost.is_set()
    live.release()
    dead = _DispatchLock(sandbox_running.id, ttl=0.4)
    assert dead.acquire()
    dead._stop.set()  # the heartbeat dies with its process
    dead._heartbeat.join()
    assert not _DispatchLock(sandbox_running.id, ttl=0.4).acquire()
    successor = _DispatchLock(sandbox_running.id, ttl=0.4)
    assert successor.wait_acquire(timeout=2)
    successor.release()


def test_a_restarted_worker_waits_out_the_dead_dispatchers_lock(sandbox_running, monkeypatch):
    monkeypatch.setattr(dispatch_module, "DISPATCH_LOCK_SECONDS", 0.4)
    dead = _DispatchLock(sandbox_running.id, ttl=0.4)
    assert dead.acquire()
    dead._stop.set()
    dead._heartbeat.join()
    assert bulk_dispatch(bulk_id=sandbox_running.id).busy
    assert bulk_dispatch(bulk_id=sandbox_running.id, wait_for_lock=True).handed_over == 3


def test_dispatch_backs_off_when_twilio_keeps_failing(twilio_tenant, sandbox_running):
    def deliver(*, message_id, **_):
        raise DeliveryRetry(
            message_id=message_id, error=TwilioError(code=20429, status=429, retryable=True, message="slow")
        )

    result = bulk_dispatch(bulk_id=sandbox_running.id, deliver=deliver)
    assert result.backoff and result.handed_over == 3 and result.outcomes == {"retry": 3}
    sandbox_running.refresh_from_db()
    assert sandbox_running.status == "running"  # nothing lost: the rows wait for the next run


def test_dispatch_ignores_deferred_rows_until_released(twilio_tenant, sandbox_running):
    rows = Message.objects.for_tenant(twilio_tenant).filter(bulk_send=sandbox_running)
    rows.update(gate_decision="defer", send_after=timezone.now() + timedelta(hours=1))
    result = bulk_dispatch(bulk_id=sandbox_running.id)
    assert result.handed_over == 0 and not result.completed  # deferred rows keep it running
    sandbox_running.refresh_from_db()
    assert sandbox_running.status == "running"


@pytest.mark.parametrize("bulk_status,expected", [("paused", 0), ("cancelled", 0), ("running", 1)])
def test_stale_bulk_row_is_requeued_only_while_its_bulk_send_runs(tenant, bulk_status, expected, monkeypatch):
    """A row whose first attempt failed must not be sent by the recovery job while paused."""
    from datetime import timedelta

    from django.utils import timezone

    from messaging.delivery import deferred as sending
    from messaging.models import Message

    monkeypatch.setattr(sending, "deliveries_enqueue_on_commit", lambda ids: None)
    template = MessageTemplateFactory(tenant=tenant, name="t", purpose="transactional", body="Hi")
    bulk = BulkSendFactory(tenant=tenant, name="b", template=template, purpose="transactional", status=bulk_status)
    long_ago = timezone.now() - timedelta(hours=1)
    Message.objects.create(
        tenant=tenant,
        direction="outbound",
        from_number="+14155550101",
        to_number="+14155550188",
        body="Hi",
        status="pending",
        gate_decision="send",
        purpose="transactional",
        bulk_send=bulk,
        send_attempts=1,
        send_claimed_until=long_ago,
        send_after=long_ago,
    )
    assert sending.deferred_messages_release() == expected


def test_undelivered_is_counted_as_undelivered_like_the_dashboard(client, tenant, viewer, running):
    """A carrier's 30003 is `undelivered` on the bulk page, its JSON, the list and the dashboard."""
    first = Message.objects.for_tenant(tenant).filter(bulk_send=running).order_by("id").first()
    Message.all_tenants.filter(pk=first.pk).update(status="undelivered", error_code=30003)
    counts = bulk_progress(tenant=tenant, bulk=running)["counts"]
    assert counts["undelivered"] == 1 and counts["failed"] == 0
    assert {s.key: s.label for s in SERIES}["undelivered"] == COUNT_LABELS["undelivered"] == "Undelivered"

    client.force_login(viewer)
    assert client.get(url("bulk_progress", tenant, bulk_id=running.id)).json()["counts"]["undelivered"] == 1
    html = client.get(url("bulk_detail", tenant, bulk_id=running.id)).content.decode()
    assert 'data-count="undelivered">1<' in html and 'data-count="failed">0<' in html
    assert "Undelivered" in client.get(url("bulk_list", tenant)).content.decode()
