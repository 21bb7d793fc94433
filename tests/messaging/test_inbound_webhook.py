"""Inbound SMS webhook: stored once per MessageSid, keywords per tenant, who answers, the
START confirmation's marketing offer. Every request is signed exactly as Twilio signs."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from messaging.intake import inbound as inbound_module
from messaging.intake.keywords import (
    DEFAULT_HELP_KEYWORDS,
    DEFAULT_OPT_IN_KEYWORDS,
    DEFAULT_OPT_OUT_KEYWORDS,
    normalize_keyword,
)
from messaging.ledgers.reachability import number_is_opted_out
from messaging.ledgers.selectors import consent_granted_purposes
from messaging.ledgers.services import consent_record, opt_out_record
from messaging.models import (
    ConsentEvent,
    Message,
    MessageEvent,
    OptOutEvent,
    RevocationReview,
    disclosure_hash,
)
from tests.conftest import random_sid
from tests.messaging.factories import TenantKeywordFactory
from tests.tenants.factories import TenantFactory

INBOUND = "/webhooks/twilio/messaging/inbound/"
CUSTOMER = "+14155550100"
OUR_NUMBER = "+14155550199"
SERVICE = "MG" + "a" * 32
DISCLOSURE = "Acme sends up to 4 marketing msgs/month. Consent not required to buy. Reply STOP to cancel."

pytestmark = pytest.mark.django_db


def post_inbound(twilio_webhook, tenant, body, *, sid=None, phone=CUSTOMER, to=OUR_NUMBER, **extra):
    params = {
        "AccountSid": tenant.account_sid,
        "MessageSid": sid or random_sid("SM"),
        "From": phone,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        **extra,
    }
    return twilio_webhook.post(INBOUND, params, token=tenant.auth_token.reveal())


def replies(response) -> list[str]:
    """The <Message> texts of a TwiML answer (asserting it is one)."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


def messages(tenant):
    return Message.objects.for_tenant(tenant)


def opt_outs(tenant, **filters):
    return OptOutEvent.objects.for_tenant(tenant).filter(**filters)


def set_portal_mode(tenant, *, disclosure=""):
    tenant.keyword_replies = "portal"
    tenant.marketing_disclosure = disclosure
    tenant.save()


# --- storing the message once -----------------------------------------------------------------------


def test_message_stored_with_its_fields(twilio_webhook, tenant):
    sid = random_sid("SM")
    response = post_inbound(
        twilio_webhook,
        tenant,
        "Here is the photo",
        sid=sid,
        NumMedia="2",
        NumSegments="2",
        MessagingServiceSid=SERVICE,
        MediaUrl0="https://api.twilio.com/media/ME0",
        MediaContentType0="image/jpeg",
        MediaUrl1="https://api.twilio.com/media/ME1",
        MediaContentType1="image/png",
    )
    assert replies(response) == []
    message = messages(tenant).get(sid=sid)
    assert message.direction == "inbound"
    assert message.body == "Here is the photo"
    assert message.from_number == CUSTOMER and message.to_number == OUR_NUMBER
    assert message.messaging_service_sid == SERVICE
    assert message.num_segments == 2 and message.num_media == 2
    assert message.media == [
        {"url": "https://api.twilio.com/media/ME0", "content_type": "image/jpeg"},
        {"url": "https://api.twilio.com/media/ME1", "content_type": "image/png"},
    ]
    assert message.status == "received"
    assert message.keyword == "" and message.is_evidence is False
    event = MessageEvent.objects.for_tenant(tenant).get(message=message)
    assert event.status == "received"
    # The body and media are personal data that retention purges from the row: no copy here.
    assert "Body" not in event.payload and "MediaUrl0" not in event.payload
    assert event.payload["MediaContentType1"] == "image/png"


def test_numbers_normalised_to_e164_when_valid_and_kept_raw_otherwise(twilio_webhook, tenant):
    post_inbound(twilio_webhook, tenant, "hi", sid="SM" + "1" * 32, phone="415 555 0100", to="12345")
    post_inbound(twilio_webhook, tenant, "hi", sid="SM" + "2" * 32, phone="ACMEBANK")
    first = messages(tenant).get(sid="SM" + "1" * 32)
    assert first.from_number == CUSTOMER and first.to_number == "12345"  # short code kept
    assert messages(tenant).get(sid="SM" + "2" * 32).from_number == "ACMEBANK"


def test_duplicate_delivery_changes_nothing_and_never_replies_twice(twilio_webhook, tenant):
    set_portal_mode(tenant)
    sid = random_sid("SM")
    first = post_inbound(twilio_webhook, tenant, "STOP", sid=sid)
    second = post_inbound(twilio_webhook, tenant, "STOP", sid=sid)
    assert len(replies(first)) == 1
    assert replies(second) == []  # 200, empty TwiML
    assert messages(tenant).filter(sid=sid).count() == 1
    assert opt_outs(tenant).count() == 1
    assert MessageEvent.objects.for_tenant(tenant).count() == 1


def test_duplicate_with_different_body_does_not_overwrite(twilio_webhook, tenant):
    sid = random_sid("SM")
    post_inbound(twilio_webhook, tenant, "hello", sid=sid)
    post_inbound(twilio_webhook, tenant, "STOP", sid=sid)
    assert messages(tenant).get(sid=sid).body == "hello"
    assert not opt_outs(tenant).exists()


def test_other_text_answers_empty_twiml(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    response = post_inbound(twilio_webhook, tenant, "Can you stop by at 5?")
    assert replies(response) == []
    assert response.content.decode().endswith("<Response />")
    assert not opt_outs(tenant).exists()
    assert not RevocationReview.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("missing", ["MessageSid", "From", "To"])
def test_missing_required_field_400(twilio_webhook, tenant, missing):
    params = {"AccountSid": tenant.account_sid, "MessageSid": random_sid("SM"), "From": CUSTOMER, "To": OUR_NUMBER}
    params[missing] = ""
    response = twilio_webhook.post(INBOUND, params, token=tenant.auth_token.reveal())
    assert response.status_code == 400
    assert missing in response.content.decode()
    assert not messages(tenant).exists()


def test_suspended_tenant_still_records_inbound_and_opt_outs(twilio_webhook, tenant):
    tenant.status = "suspended"
    tenant.save()
    post_inbound(twilio_webhook, tenant, "STOP")
    assert number_is_opted_out(tenant=tenant, phone=CUSTOMER)


def test_sid_of_another_tenant_is_not_touched(twilio_webhook, tenant, other_tenant, caplog):
    """A signed webhook from tenant B naming tenant A's MessageSid changes nothing anywhere."""
    sid = random_sid("SM")
    post_inbound(twilio_webhook, tenant, "hello", sid=sid)
    set_portal_mode(other_tenant)
    response = post_inbound(twilio_webhook, other_tenant, "STOP", sid=sid, phone="+14155551234")
    assert replies(response) == []  # answered like a duplicate: no 403 oracle, no reply
    assert messages(tenant).get(sid=sid).body == "hello"
    assert not messages(other_tenant).exists()
    assert not OptOutEvent.all_tenants.exists()
    assert "twilio.webhook.foreign_message_sid" in caplog.text


# --- keywords ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        *DEFAULT_OPT_OUT_KEYWORDS,
        "stop",
        "  Stop  ",
        "STOP!",
        "stop.",
        "Unsubscribe??",
        "opt out",
        "Opt  Out!",
        '"Quit"',
        "\u00a0end\u00a0",
    ],
)
def test_opt_out_keywords(twilio_webhook, tenant, body):
    sid = random_sid("SM")
    post_inbound(twilio_webhook, tenant, body, sid=sid, MessagingServiceSid=SERVICE)
    message = messages(tenant).get(sid=sid)
    assert message.keyword == "opt_out" and message.is_evidence is True
    event = opt_outs(tenant).get()
    assert event.action == "opt_out" and event.source == "keyword"
    assert event.phone == CUSTOMER
    assert event.sender == SERVICE  # the Messaging Service it arrived on
    assert event.keyword == normalize_keyword(body)  # e.g. "Opt  Out!" is recorded as "OPT OUT"
    assert event.message_id == message.pk
    assert event.created_at == message.created_at
    assert number_is_opted_out(tenant=tenant, phone=CUSTOMER)


def test_opt_out_sender_is_the_number_without_a_messaging_service(twilio_webhook, tenant):
    post_inbound(twilio_webhook, tenant, "STOP")
    assert opt_outs(tenant).get().sender == OUR_NUMBER


@pytest.mark.parametrize("body", [*DEFAULT_OPT_IN_KEYWORDS, "start!", " unstop "])
def test_opt_in_keywords(twilio_webhook, tenant, body):
    opt_out_record(tenant=tenant, phone=CUSTOMER, source="keyword", keyword="STOP")
    sid = random_sid("SM")
    post_inbound(twilio_webhook, tenant, body, sid=sid)
    message = messages(tenant).get(sid=sid)
    assert message.keyword == "opt_in" and message.is_evidence is True
    assert opt_outs(tenant, message=message).get().action == "opt_in"
    assert not number_is_opted_out(tenant=tenant, phone=CUSTOMER)


@pytest.mark.parametrize("body", [*DEFAULT_HELP_KEYWORDS, "help?", "Info"])
def test_help_keywords_record_no_ledger_event(twilio_webhook, tenant, body):
    sid = random_sid("SM")
    post_inbound(twilio_webhook, tenant, body, sid=sid)
    message = messages(tenant).get(sid=sid)
    assert message.keyword == "help" and message.is_evidence is False
    assert not opt_outs(tenant).exists()


@pytest.mark.parametrize("body", ["STOP please", "stop by at 5", "Stopping by later"])
def test_keyword_must_be_the_whole_body(twilio_webhook, tenant, body):
    post_inbound(twilio_webhook, tenant, body)
    assert messages(tenant).get().keyword == ""
    assert not opt_outs(tenant).exists()


@pytest.mark.parametrize("body", ["BAJA", "baja", "¡Baja!", "ARRET", "Arrêt", "arret."])
def test_tenant_opt_out_keywords(twilio_webhook, tenant, other_tenant, body):
    TenantKeywordFactory(tenant=tenant, kind="opt_out", word="BAJA")
    TenantKeywordFactory(tenant=tenant, kind="opt_out", word="ARRÊT")
    post_inbound(twilio_webhook, tenant, body)
    assert opt_outs(tenant).get().source == "keyword"
    # Another tenant's keywords are its own.
    post_inbound(twilio_webhook, other_tenant, body)
    assert not opt_outs(other_tenant).exists()


def test_tenant_opt_in_and_help_keywords(twilio_webhook, tenant):
    TenantKeywordFactory(tenant=tenant, kind="opt_in", word="ALTA")
    TenantKeywordFactory(tenant=tenant, kind="help", word="AYUDA")
    post_inbound(twilio_webhook, tenant, "alta", sid="SM" + "1" * 32)
    post_inbound(twilio_webhook, tenant, "Ayuda", sid="SM" + "2" * 32)
    assert messages(tenant).get(sid="SM" + "1" * 32).keyword == "opt_in"
    assert messages(tenant).get(sid="SM" + "2" * 32).keyword == "help"


@pytest.mark.parametrize(
    "body,opt_out_type,expected",
    [
        ("PARAR", "STOP", "opt_out"),  # the Messaging Service's own keyword list said STOP
        ("hello there", "START", "opt_in"),
        ("STOP", "HELP", "help"),  # authoritative: Twilio already acted on it as HELP
        ("stop", "stop", "opt_out"),
    ],
)
def test_opt_out_type_is_authoritative(twilio_webhook, tenant, body, opt_out_type, expected):
    sid = random_sid("SM")
    post_inbound(twilio_webhook, tenant, body, sid=sid, OptOutType=opt_out_type)
    message = messages(tenant).get(sid=sid)
    assert message.keyword == expected
    if expected == "help":
        assert not opt_outs(tenant).exists()
    else:
        assert opt_outs(tenant).get().source == "opt_out_type"


def test_unknown_opt_out_type_falls_back_to_the_body(twilio_webhook, tenant):
    post_inbound(twilio_webhook, tenant, "STOP", OptOutType="SOMETHING_NEW")
    assert opt_outs(tenant).get().source == "keyword"


# --- who answers ------------------------------------------------------------------------------------


def test_help_reply_in_portal_mode(twilio_webhook, tenant):
    tenant.sender_email = "help@acme.example"
    set_portal_mode(tenant)
    (text,) = replies(post_inbound(twilio_webhook, tenant, "HELP"))
    assert tenant.name in text
    assert "help@acme.example" in text
    assert "Msg & data rates may apply" in text
    assert "STOP" in text


def test_help_reply_uses_the_tenants_own_text(twilio_webhook, tenant):
    tenant.help_text = "{brand} alerts. Call 555-0100. 2 msgs/week. Msg & data rates may apply. Text STOP to end."
    set_portal_mode(tenant)
    (text,) = replies(post_inbound(twilio_webhook, tenant, "info"))
    assert text == f"{tenant.name} alerts. Call 555-0100. 2 msgs/week. Msg & data rates may apply. Text STOP to end."


def test_stop_reply_is_one_confirmation_without_marketing(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    assert replies(post_inbound(twilio_webhook, tenant, "STOP")) == [tenant.keyword_reply("opt_out")]
    assert "offers" not in tenant.keyword_reply("opt_out")


def test_start_reply_confirms_resubscription(twilio_webhook, tenant):
    set_portal_mode(tenant)
    assert replies(post_inbound(twilio_webhook, tenant, "START")) == [tenant.keyword_reply("opt_in")]


@pytest.mark.parametrize("body", ["STOP", "START", "HELP", "YES", "BAJA"])
def test_twilio_mode_records_the_same_ledger_and_answers_empty(twilio_webhook, tenant, other_tenant, body):
    """keyword_replies='twilio' (the default): Twilio answers, the portal only records."""
    set_portal_mode(other_tenant, disclosure=DISCLOSURE)
    for t in (tenant, other_tenant):
        TenantKeywordFactory(tenant=t, kind="opt_out", word="BAJA")
    assert tenant.keyword_replies == "twilio"
    assert replies(post_inbound(twilio_webhook, tenant, body)) == []
    assert len(replies(post_inbound(twilio_webhook, other_tenant, body))) == 1

    def ledger(t):
        return list(opt_outs(t).values_list("phone", "action", "source", "keyword", "sender"))

    assert ledger(tenant) == ledger(other_tenant)
    assert messages(tenant).get().keyword == messages(other_tenant).get().keyword


# --- consent ----------------------------------------------------------------------------------------


def test_stop_revokes_every_granted_purpose(twilio_webhook, tenant):
    for purpose in ("marketing", "transactional", "informational"):
        consent_record(tenant=tenant, phone=CUSTOMER, purpose=purpose, action="granted", method="web_form")
    consent_record(tenant=tenant, phone=CUSTOMER, purpose="informational", action="revoked", method="web_form")
    post_inbound(twilio_webhook, tenant, "STOP")
    opt_out = opt_outs(tenant).get()
    revoked = ConsentEvent.objects.for_tenant(tenant).filter(opt_out_event=opt_out)
    assert sorted(revoked.values_list("purpose", flat=True)) == ["marketing", "transactional"]
    assert set(revoked.values_list("action", "method")) == {("revoked", "keyword")}
    assert consent_granted_purposes(tenant=tenant, phone=CUSTOMER) == []


def test_start_lifts_the_opt_out_and_restores_no_consent(twilio_webhook, tenant):
    consent_record(tenant=tenant, phone=CUSTOMER, purpose="marketing", action="granted", method="web_form")
    post_inbound(twilio_webhook, tenant, "STOP")
    post_inbound(twilio_webhook, tenant, "START")
    assert not number_is_opted_out(tenant=tenant, phone=CUSTOMER)
    assert consent_granted_purposes(tenant=tenant, phone=CUSTOMER) == []


# --- the START confirmation's marketing offer ---------------------------------------------------------


def marketing_consents(tenant):
    return ConsentEvent.objects.for_tenant(tenant).filter(purpose="marketing", action="granted")


def test_start_offers_marketing_and_yes_records_consent(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    opt_out_record(tenant=tenant, phone=CUSTOMER, source="keyword", keyword="STOP")
    start_sid, yes_sid = random_sid("SM"), random_sid("SM")
    (offer,) = replies(post_inbound(twilio_webhook, tenant, "START", sid=start_sid))
    assert offer == f"{tenant.keyword_reply('opt_in')}\nReply YES to also get offers: {DISCLOSURE}"
    assert not marketing_consents(tenant).exists()  # START alone restores nothing

    (confirmation,) = replies(post_inbound(twilio_webhook, tenant, "Yes!", sid=yes_sid))
    assert confirmation == tenant.keyword_reply("opt_in")  # not offered a second time
    yes = messages(tenant).get(sid=yes_sid)
    consent = marketing_consents(tenant).get()
    assert consent.phone == CUSTOMER
    assert consent.method == "keyword"
    assert consent.source == "START confirmation"
    assert consent.disclosure.text == DISCLOSURE
    assert consent.disclosure.sha256 == disclosure_hash(DISCLOSURE)
    assert consent.captured_at == yes.created_at
    assert start_sid in consent.note and yes_sid in consent.note
    assert yes.is_evidence is True and yes.keyword == "opt_in"
    assert opt_outs(tenant, message=yes, action="opt_in").exists()  # YES is an opt-in too
    assert consent_granted_purposes(tenant=tenant, phone=CUSTOMER) == ["marketing"]


def test_yes_answers_the_offer_only_once(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    post_inbound(twilio_webhook, tenant, "YES")
    post_inbound(twilio_webhook, tenant, "YES")
    assert marketing_consents(tenant).count() == 1


def test_duplicate_yes_delivery_records_consent_once(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    sid = random_sid("SM")
    post_inbound(twilio_webhook, tenant, "YES", sid=sid)
    assert replies(post_inbound(twilio_webhook, tenant, "YES", sid=sid)) == []
    assert marketing_consents(tenant).count() == 1


def test_duplicate_start_delivery_offers_once(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    sid = random_sid("SM")
    assert len(replies(post_inbound(twilio_webhook, tenant, "START", sid=sid))) == 1
    assert replies(post_inbound(twilio_webhook, tenant, "START", sid=sid)) == []


def test_tenant_opt_in_word_answers_the_offer(twilio_webhook, tenant):
    TenantKeywordFactory(tenant=tenant, kind="opt_in", word="SÍ")
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    post_inbound(twilio_webhook, tenant, "si")
    assert marketing_consents(tenant).count() == 1


@pytest.mark.parametrize("answer", ["START", "UNSTOP", "ok", "Yes please send them"])
def test_only_yes_answers_the_offer(twilio_webhook, tenant, answer):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    post_inbound(twilio_webhook, tenant, answer)
    assert not marketing_consents(tenant).exists()


def test_opt_out_type_start_alone_does_not_answer_the_offer(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    post_inbound(twilio_webhook, tenant, "sure thing", OptOutType="START")
    assert not marketing_consents(tenant).exists()


def test_yes_must_come_right_after_the_offer(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    post_inbound(twilio_webhook, tenant, "HELP")
    post_inbound(twilio_webhook, tenant, "YES")
    assert not marketing_consents(tenant).exists()


def test_yes_after_24_hours_records_no_consent(twilio_webhook, tenant, monkeypatch):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    later = timezone.now() + timedelta(hours=24, minutes=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    post_inbound(twilio_webhook, tenant, "YES")
    assert not marketing_consents(tenant).exists()


def test_yes_within_24_hours_records_consent(twilio_webhook, tenant, monkeypatch):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    later = timezone.now() + timedelta(hours=23, minutes=59)
    monkeypatch.setattr(timezone, "now", lambda: later)
    post_inbound(twilio_webhook, tenant, "YES")
    assert marketing_consents(tenant).get().captured_at == later


def test_yes_from_another_person_or_to_another_number_records_no_consent(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    post_inbound(twilio_webhook, tenant, "YES", phone="+14155551234")
    post_inbound(twilio_webhook, tenant, "YES", to="+16175550123")
    assert not marketing_consents(tenant).exists()


def test_no_offer_without_a_disclosure_or_in_twilio_mode(twilio_webhook, tenant, other_tenant):
    set_portal_mode(tenant)  # portal answers, but no disclosure configured
    other_tenant.marketing_disclosure = DISCLOSURE  # disclosure, but Twilio answers: no offer sent
    other_tenant.save()
    for t in (tenant, other_tenant):
        (text,) = replies(post_inbound(twilio_webhook, t, "START")) or [""]
        assert "offers" not in text
        post_inbound(twilio_webhook, t, "YES")
        assert not marketing_consents(t).exists()


def test_consent_references_the_disclosure_that_was_offered(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    tenant.marketing_disclosure = "A different text, edited after the offer went out."
    tenant.save()
    post_inbound(twilio_webhook, tenant, "YES")
    assert marketing_consents(tenant).get().disclosure.text == DISCLOSURE


def test_stop_after_the_offer_cancels_it(twilio_webhook, tenant):
    set_portal_mode(tenant, disclosure=DISCLOSURE)
    post_inbound(twilio_webhook, tenant, "START")
    post_inbound(twilio_webhook, tenant, "STOP")
    post_inbound(twilio_webhook, tenant, "YES")
    assert not marketing_consents(tenant).exists()
    assert not number_is_opted_out(tenant=tenant, phone=CUSTOMER)  # the YES itself opted back in


# --- concurrency (PostgreSQL) ------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_deliveries_reply_and_record_once(postgresql, monkeypatch):
    """Two deliveries of one STOP at the same time: one stores and answers, the other waits on
    the unique MessageSid, then answers empty."""
    tenant = TenantFactory(slug="race", keyword_replies="portal")
    slow = inbound_module._inbound_process

    def slow_process(**kwargs):
        time.sleep(0.3)  # hold the first transaction open while the second one inserts
        return slow(**kwargs)

    monkeypatch.setattr(inbound_module, "_inbound_process", slow_process)
    params = {"MessageSid": random_sid("SM"), "From": CUSTOMER, "To": OUR_NUMBER, "Body": "STOP"}
    results, errors = [], []
    barrier = threading.Barrier(2)

    def deliver():
        try:
            barrier.wait()
            results.append(inbound_module.inbound_message_receive(tenant=tenant, params=params))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.created for r in results) == [False, True]
    assert sum(1 for r in results if r.reply) == 1
    assert messages(tenant).count() == 1
    assert opt_outs(tenant).count() == 1
