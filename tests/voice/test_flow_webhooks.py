"""The inbound and gather webhooks answering with call flows, signed exactly as Twilio signs them:
the version a call keeps, the menu path, Reject/default/unsynced numbers, outbound calls the
portal placed with a flow, and the key-press opt-out reaching the SMS gate."""

from __future__ import annotations

import socket
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

import pytest
from django.conf import settings

from messaging.compliance.gate import GateReason, gate_check
from messaging.models import OptOutEvent
from tenants.audit import SYSTEM
from tenants.models import PhoneNumber
from tenants.tasks import numbers_sync_tenant
from tests.tenants.factories import PhoneNumberFactory, random_sid
from voice.flows.services import call_flow_save
from voice.models import Call

pytestmark = pytest.mark.django_db

INBOUND = "/webhooks/twilio/voice/inbound/"
GATHER = "/webhooks/twilio/voice/gather/"
OURS = "+14155550111"
CALLER = "+14155550122"


def definition(target: str = "+12125550199") -> dict:
    return {
        "voice": "Polly.Joanna",
        "language": "en-US",
        "greeting": {"kind": "say", "text": "Thanks for calling."},
        "menu": {
            "prompt": {"kind": "say", "text": "Press 1 for sales, 2 for voicemail, 9 to opt out."},
            "options": [
                {"digit": "1", "action": {"type": "forward", "target": target}},
                {"digit": "2", "action": {"type": "voicemail"}},
                {"digit": "9", "action": {"type": "opt_out"}},
            ],
            "no_input": {"type": "hangup"},
        },
        "hours": {"enabled": False},
    }


@pytest.fixture
def number(tenant):
    return PhoneNumberFactory(tenant=tenant, phone_number=OURS, voice=True)


@pytest.fixture
def flow_v1(tenant, number):
    return call_flow_save(tenant=tenant, number=number, name="Main line", definition=definition(), audit=SYSTEM)


def call_params(tenant, sid: str, **extra) -> dict:
    return {
        "AccountSid": tenant.account_sid,
        "CallSid": sid,
        "From": CALLER,
        "To": OURS,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def post(twilio_webhook, tenant, path: str, params: dict):
    response = twilio_webhook.post(path, params, token=tenant.auth_token.reveal())
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    return ElementTree.fromstring(response.content)


def gather_path(root: ElementTree.Element) -> str:
    """The path + query of the menu's Gather action, as Twilio would call it back."""
    action = root.find("Gather").get("action")
    assert action.startswith(settings.PUBLIC_BASE_URL + GATHER)
    parts = urlsplit(action)
    return f"{parts.path}?{parts.query}"


def press(twilio_webhook, tenant, path: str, sid: str, digits: str):
    return post(
        twilio_webhook, tenant, path, {**call_params(tenant, sid), "Digits": digits, "CallStatus": "in-progress"}
    )


def test_inbound_answers_the_numbers_flow_and_pins_the_version_on_the_call(twilio_webhook, tenant, flow_v1):
    sid = random_sid("CA")
    root = post(twilio_webhook, tenant, INBOUND, call_params(tenant, sid))
    assert [e.tag for e in root] == ["Say", "Gather", "Redirect"]
    call = Call.objects.for_tenant(tenant).get(sid=sid)
    assert call.flow_version == flow_v1 and call.direction == "inbound"
    assert (call.from_number, call.to_number) == (CALLER, OURS)
    assert [(p["step"], p["action"]) for p in call.menu_path] == [("answer", "menu")]
    # Twilio retries the same request: same answer, nothing appended twice.
    post(twilio_webhook, tenant, INBOUND, call_params(tenant, sid))
    call.refresh_from_db()
    assert len(call.menu_path) == 1


def test_an_edit_mid_call_does_not_change_the_call_in_progress(twilio_webhook, tenant, number, flow_v1):
    sid = random_sid("CA")
    path = gather_path(post(twilio_webhook, tenant, INBOUND, call_params(tenant, sid)))
    v2 = call_flow_save(
        tenant=tenant, number=number, name="Main line", definition=definition("+13105550100"), audit=SYSTEM
    )
    assert v2.number == 2
    dial = press(twilio_webhook, tenant, path, sid, "1").find("Dial")
    assert dial.find("Number").text == "+12125550199"  # v1's target
    done = urlsplit(dial.get("action"))
    root = post(
        twilio_webhook, tenant, f"{done.path}?{done.query}", {**call_params(tenant, sid), "DialCallStatus": "no-answer"}
    )
    assert "no one could take your call" in root.find("Say").text
    call = Call.objects.for_tenant(tenant).get(sid=sid)
    assert call.flow_version == flow_v1
    assert [(p["step"], p["digits"], p["action"]) for p in call.menu_path] == [
        ("answer", "", "menu"),
        ("menu", "1", "forward"),
        ("dialed", "", "not_answered"),
    ]
    # A new call gets the new version.
    other = random_sid("CA")
    path = gather_path(post(twilio_webhook, tenant, INBOUND, call_params(tenant, other)))
    assert press(twilio_webhook, tenant, path, other, "1").find("Dial/Number").text == "+13105550100"


def test_voicemail_path_and_the_record_callback(twilio_webhook, tenant, flow_v1):
    sid = random_sid("CA")
    path = gather_path(post(twilio_webhook, tenant, INBOUND, call_params(tenant, sid)))
    record = press(twilio_webhook, tenant, path, sid, "2").find("Record")
    assert record.get("recordingStatusCallback") == settings.PUBLIC_BASE_URL + "/webhooks/twilio/voice/recording/"
    done = urlsplit(record.get("action"))
    root = post(twilio_webhook, tenant, f"{done.path}?{done.query}", call_params(tenant, sid, CallStatus="in-progress"))
    assert [e.tag for e in root] == ["Say", "Hangup"]
    steps = [p["step"] for p in Call.objects.for_tenant(tenant).get(sid=sid).menu_path]
    assert steps == ["answer", "menu", "voicemail"]


def test_key_press_opt_out_is_in_the_ledger_confirmed_by_voice_and_blocks_the_next_sms(twilio_webhook, tenant, flow_v1):
    assert gate_check(tenant=tenant, to=CALLER, purpose="transactional").reason != GateReason.OPTED_OUT
    sid = random_sid("CA")
    path = gather_path(post(twilio_webhook, tenant, INBOUND, call_params(tenant, sid)))
    root = press(twilio_webhook, tenant, path, sid, "9")
    assert "no longer receive calls or text messages" in root.find("Say").text
    event = OptOutEvent.objects.for_tenant(tenant).get(phone=CALLER)
    assert (event.action, event.source, event.sender) == ("opt_out", "voice_keypress", OURS)
    assert sid in event.reason
    verdict = gate_check(tenant=tenant, to=CALLER, purpose="transactional")
    assert (verdict.decision, verdict.reason) == ("block", GateReason.OPTED_OUT)
    # Twilio retries the key press: still one ledger row.
    press(twilio_webhook, tenant, path, sid, "9")
    assert OptOutEvent.objects.for_tenant(tenant).filter(phone=CALLER).count() == 1


def test_a_hidden_caller_cannot_be_opted_out_and_is_told_so(twilio_webhook, tenant, flow_v1):
    sid = random_sid("CA")
    params = call_params(tenant, sid, From="anonymous")
    path = gather_path(post(twilio_webhook, tenant, INBOUND, params))
    root = post(twilio_webhook, tenant, path, {**params, "Digits": "9"})
    assert "your number is hidden" in root.find("Say").text
    assert not OptOutEvent.objects.for_tenant(tenant).exists()


def test_a_number_without_a_flow_gets_the_polite_default(twilio_webhook, tenant, number):
    root = post(twilio_webhook, tenant, INBOUND, call_params(tenant, random_sid("CA")))
    assert [e.tag for e in root] == ["Say", "Hangup"] and tenant.name in root[0].text


def test_a_number_the_tenant_does_not_have_is_rejected(twilio_webhook, tenant, other_tenant):
    PhoneNumberFactory(tenant=other_tenant, phone_number=OURS, voice=True)
    root = post(twilio_webhook, tenant, INBOUND, call_params(tenant, random_sid("CA")))
    assert [e.tag for e in root] == ["Reject"]
    assert not Call.objects.for_tenant(tenant).exists()
    for to in ("client:alice", "sip:alice@example.com"):
        assert [e.tag for e in post(twilio_webhook, tenant, INBOUND, call_params(tenant, random_sid("CA"), To=to))] == [
            "Reject"
        ]


def test_a_released_number_is_rejected(twilio_webhook, tenant, number):
    number.released_at = number.synced_at
    number.save()
    assert [e.tag for e in post(twilio_webhook, tenant, INBOUND, call_params(tenant, random_sid("CA")))] == ["Reject"]


@pytest.fixture
def eager_celery():
    from commsportal.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


def test_an_unsynced_number_gets_the_default_and_a_sync(
    twilio_webhook, tenant, sandbox, sandbox_settings, eager_celery, django_capture_on_commit_callbacks
):
    sandbox.register_account(tenant.account_sid, tenant.auth_token.reveal())
    sandbox.seed_number(tenant.account_sid, OURS)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        root = post(twilio_webhook, tenant, INBOUND, call_params(tenant, random_sid("CA")))
    assert [e.tag for e in root] == ["Say", "Hangup"]
    assert len(callbacks) == 1
    assert PhoneNumber.objects.for_tenant(tenant).filter(phone_number=OURS).exists()  # the task synced it
    # A second call soon after does not queue another sync (throttled per tenant).
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        PhoneNumber.objects.for_tenant(tenant).delete()
        post(twilio_webhook, tenant, INBOUND, call_params(tenant, random_sid("CA")))
    assert callbacks == []


def test_outbound_call_placed_with_a_flow_uses_its_call_row(twilio_webhook, tenant, number, flow_v1):
    call = Call.objects.create(
        tenant=tenant, direction="outbound", from_number=OURS, to_number=CALLER, status="queued", flow_version=flow_v1
    )
    call_flow_save(tenant=tenant, number=number, name="Main line", definition=definition("+13105550100"), audit=SYSTEM)
    sid = random_sid("CA")
    params = call_params(tenant, sid, From=OURS, To=CALLER, Direction="outbound-api", CallStatus="in-progress")
    root = post(twilio_webhook, tenant, f"{INBOUND}?{urlencode({'call': call.pk})}", params)
    assert root.find("Gather") is not None
    call.refresh_from_db()
    assert call.sid == sid and call.flow_version == flow_v1
    dial = post(twilio_webhook, tenant, gather_path(root), {**params, "Digits": "1"}).find("Dial")
    assert dial.find("Number").text == "+12125550199" and dial.get("callerId") == OURS
    # The opt-out on an outbound call opts out the person called.
    post(twilio_webhook, tenant, gather_path(root), {**params, "Digits": "9"})
    assert OptOutEvent.objects.for_tenant(tenant).get().phone == CALLER


def test_outbound_reference_to_another_tenants_call_hangs_up(twilio_webhook, tenant, other_tenant, flow_v1):
    theirs = Call.objects.create(
        tenant=other_tenant, direction="outbound", from_number=OURS, to_number=CALLER, status="queued"
    )
    for ref in (str(theirs.pk), "abc", "99999999999999999999"):
        root = post(
            twilio_webhook, tenant, f"{INBOUND}?{urlencode({'call': ref})}", call_params(tenant, random_sid("CA"))
        )
        assert [e.tag for e in root] == ["Hangup"]
    theirs.refresh_from_db()
    assert theirs.sid is None


def test_gather_for_an_unknown_call_ends_politely(twilio_webhook, tenant, flow_v1):
    root = post(
        twilio_webhook,
        tenant,
        f"{GATHER}?step=menu&attempt=1",
        {**call_params(tenant, random_sid("CA")), "Digits": "1"},
    )
    assert [e.tag for e in root] == ["Say", "Hangup"]


def test_gather_with_hostile_query_and_digits_is_harmless(twilio_webhook, tenant, flow_v1):
    sid = random_sid("CA")
    post(twilio_webhook, tenant, INBOUND, call_params(tenant, sid))
    for query in ("step=menu&attempt=-1", "step=menu&attempt=99999999999", "step=%00", "attempt=x", "step="):
        root = post(twilio_webhook, tenant, f"{GATHER}?{query}", {**call_params(tenant, sid), "Digits": "1\x00;<x>"})
        assert root.tag == "Response"


def test_gather_is_signed_like_every_webhook(client, tenant, flow_v1):
    response = client.post(
        f"{GATHER}?step=menu&attempt=1",
        data=urlencode({**call_params(tenant, random_sid("CA")), "Digits": "9"}),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE="forged",
    )
    assert response.status_code == 403
    assert not OptOutEvent.objects.for_tenant(tenant).exists()


def test_answering_makes_no_network_call(twilio_webhook, tenant, flow_v1, monkeypatch):
    """Twilio waits for the TwiML while the caller hears silence: nothing on the way may dial out."""

    def refuse(*args, **kwargs):
        raise AssertionError("network call on the request path")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    sid = random_sid("CA")
    path = gather_path(post(twilio_webhook, tenant, INBOUND, call_params(tenant, sid)))
    assert press(twilio_webhook, tenant, path, sid, "1").find("Dial") is not None


def test_the_sync_task_skips_inactive_tenants_and_survives_twilio_failures(tenant, settings):
    settings.TWILIO_API_BASE_URL = "http://127.0.0.1:9"  # nothing listens: a transport failure
    assert numbers_sync_tenant(tenant.pk).startswith("failed:")
    tenant.status = "suspended"
    tenant.save()
    assert numbers_sync_tenant(tenant.pk) == "skipped: no such active tenant"


def test_a_retried_key_press_joins_the_menu_path_once_a_new_press_again(twilio_webhook, tenant, flow_v1):
    """Twilio retries a request with its `I-Twilio-Idempotency-Token`; a new request has a new one."""
    sid = random_sid("CA")
    menu = gather_path(post(twilio_webhook, tenant, INBOUND, call_params(tenant, sid)))
    params = {**call_params(tenant, sid), "Digits": "7", "CallStatus": "in-progress"}  # no such option

    def press_with(token: str):
        return twilio_webhook.post(
            menu, params, token=tenant.auth_token.reveal(), headers={"I-Twilio-Idempotency-Token": token}
        )

    first = press_with("b0b2f0a4-1d5e-4c4f-9d6a-6f1e0c2b7a11")
    retry = press_with("b0b2f0a4-1d5e-4c4f-9d6a-6f1e0c2b7a11")
    assert first.status_code == retry.status_code == 200
    assert retry.content == first.content  # the same answer to the retry
    call = Call.objects.for_tenant(tenant).get(sid=sid)
    assert [(p["step"], p["digits"], p["action"]) for p in call.menu_path] == [
        ("answer", "", "menu"),
        ("menu", "7", "wrong_key"),
    ]
    # The caller presses the same wrong key again at the same prompt: a new request, recorded.
    assert press_with("5d8c3e2a-77b1-4a0e-8f3c-2e9b6a4d1c22").status_code == 200
    call.refresh_from_db()
    assert [(p["step"], p["action"]) for p in call.menu_path][1:] == [("menu", "wrong_key"), ("menu", "wrong_key")]
