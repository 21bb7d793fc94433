"""Numbers (tenants/numbers.py and the Numbers page) against the Twilio sandbox: sync across
pages, webhook drift incl. Messaging Services, fix, buy, release, isolation and audit."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from tenants import numbers
from tenants.audit import AuditContext
from tenants.models import AuditEvent, PhoneNumber
from tenants.twilio import TwilioError, tenant_client
from tests.tenants.factories import TenantFactory

BASE = "https://portal.example.com"
SMS = BASE + "/webhooks/twilio/messaging/inbound/"
VOICE = BASE + "/webhooks/twilio/voice/inbound/"
STATUS = BASE + "/webhooks/twilio/voice/status/"
GOOD = {"SmsUrl": SMS, "VoiceUrl": VOICE, "StatusCallback": STATUS}


@pytest.fixture
def live(tenant, sandbox, sandbox_settings):
    """`tenant` as a sandbox subaccount; the portal's public URL fixed."""
    sandbox.register_account(tenant.account_sid, tenant.auth_token.reveal())
    sandbox_settings.PUBLIC_BASE_URL = BASE
    return tenant


def seed(sandbox, tenant, number, **fields):
    return sandbox.seed_number(tenant.account_sid, number, **fields)


def service_with(tenant, number_sid, *, own_inbound=True, inbound_url="https://old.example.com/sms"):
    client = tenant_client(tenant)
    service = client.messaging.v1.services.create(
        friendly_name="Acme", inbound_request_url=inbound_url, use_inbound_webhook_on_number=not own_inbound
    )
    client.messaging.v1.services(service.sid).phone_numbers.create(phone_number_sid=number_sid)
    return service


def test_sync_reads_every_page_and_marks_released(live, sandbox):
    seeded = [seed(sandbox, live, f"+1415555{i:04d}", **GOOD) for i in range(121, 126)]
    report = numbers.numbers_sync(tenant=live, page_size=2)
    assert report.total == 5 and len(report.created) == 5
    rows = PhoneNumber.objects.for_tenant(live)
    assert sorted(rows.values_list("sid", flat=True)) == sorted(n["sid"] for n in seeded)
    assert all(n.sms and n.voice and not numbers.number_drift(n) for n in rows)

    tenant_client(live).incoming_phone_numbers(seeded[0]["sid"]).delete()
    report = numbers.numbers_sync(tenant=live, page_size=2)
    assert report.released == [seeded[0]["phone_number"]] and len(report.updated) == 4
    assert PhoneNumber.objects.for_tenant(live).get(sid=seeded[0]["sid"]).released_at is not None
    assert numbers.numbers_list(tenant=live).count() == 4


def test_drift_on_the_number(live, sandbox):
    seed(sandbox, live, "+14155550131", SmsUrl="https://old.example.com/sms", VoiceUrl=VOICE)
    numbers.numbers_sync(tenant=live)
    problems = numbers.number_drift(PhoneNumber.objects.for_tenant(live).get())
    assert len(problems) == 2
    assert "SMS URL is https://old.example.com/sms" in problems[0] and SMS in problems[0]
    assert "Status callback is empty" in problems[1]


def test_drift_when_the_messaging_service_owns_inbound(live, sandbox):
    pn = seed(sandbox, live, "+14155550132", **GOOD)  # the number itself is fine...
    service = service_with(live, pn["sid"], own_inbound=True)
    numbers.numbers_sync(tenant=live)
    number = PhoneNumber.objects.for_tenant(live).get()
    assert number.messaging_service_sid == service.sid and number.service_uses_own_inbound
    (problem,) = numbers.number_drift(number)  # ...but the service's inbound URL is what counts
    assert service.sid in problem and "fixing the number alone changes nothing" in problem


def test_service_that_defers_to_the_number_uses_the_number_url(live, sandbox):
    pn = seed(sandbox, live, "+14155550133", **GOOD)
    service_with(live, pn["sid"], own_inbound=False)
    numbers.numbers_sync(tenant=live)
    number = PhoneNumber.objects.for_tenant(live).get()
    assert not number.service_uses_own_inbound and numbers.number_drift(number) == []


def test_fix_points_the_number(live, sandbox, tenant_admin):
    pn = seed(sandbox, live, "+14155550134", SmsUrl="https://old.example.com/sms")
    numbers.numbers_sync(tenant=live)
    number = PhoneNumber.objects.for_tenant(live).get()
    changed = numbers.number_fix_webhooks(tenant=live, number=number, audit=AuditContext.of(tenant_admin))
    assert changed
    at_twilio = tenant_client(live).incoming_phone_numbers(pn["sid"]).fetch()
    assert (at_twilio.sms_url, at_twilio.voice_url, at_twilio.status_callback) == (SMS, VOICE, STATUS)
    assert numbers.number_drift(number) == []
    event = AuditEvent.objects.get(action="number.fix_webhooks")
    assert event.tenant == live and event.actor == tenant_admin and event.target == pn["sid"]


def test_fix_points_the_messaging_service_when_it_owns_inbound(live, sandbox, tenant_admin):
    pn = seed(sandbox, live, "+14155550135", **GOOD)
    service = service_with(live, pn["sid"], own_inbound=True)
    numbers.numbers_sync(tenant=live)
    number = PhoneNumber.objects.for_tenant(live).get()
    numbers.number_fix_webhooks(tenant=live, number=number, audit=AuditContext.of(tenant_admin))
    client = tenant_client(live)
    assert client.messaging.v1.services(service.sid).fetch().inbound_request_url == SMS
    numbers.numbers_sync(tenant=live)
    number = PhoneNumber.objects.for_tenant(live).get()
    assert numbers.number_drift(number) == []
    assert number.sms_url == SMS  # the number itself was left alone: it never mattered


def test_search_and_buy_configures_webhooks(live, sandbox, tenant_admin):
    found = numbers.numbers_search_available(tenant=live, country="US", area_code="212", limit=3)
    assert len(found) == 3 and all(f.phone_number.startswith("+1212") for f in found)
    number = numbers.number_buy(tenant=live, phone_number=found[0].phone_number, audit=AuditContext.of(tenant_admin))
    at_twilio = tenant_client(live).incoming_phone_numbers(number.sid).fetch()
    assert (at_twilio.sms_url, at_twilio.voice_url, at_twilio.status_callback) == (SMS, VOICE, STATUS)
    assert numbers.number_drift(number) == []
    assert AuditEvent.objects.filter(action="number.buy", tenant=live, target=number.sid).exists()


def test_buy_of_an_unavailable_number_is_a_twilio_error(live, tenant_admin):
    with pytest.raises(TwilioError) as exc:
        numbers.number_buy(tenant=live, phone_number="+15005550000", audit=AuditContext.of(tenant_admin))
    assert exc.value.code == 21422
    assert not AuditEvent.objects.filter(action="number.buy").exists()


def test_release_requires_the_number_typed(live, sandbox, tenant_admin):
    pn = seed(sandbox, live, "+14155550136", **GOOD)
    numbers.numbers_sync(tenant=live)
    number = PhoneNumber.objects.for_tenant(live).get()
    with pytest.raises(ValidationError):
        numbers.number_release(tenant=live, number=number, audit=AuditContext.of(tenant_admin), confirm="+14155550000")
    assert len(list(tenant_client(live).incoming_phone_numbers.list())) == 1
    numbers.number_release(tenant=live, number=number, audit=AuditContext.of(tenant_admin), confirm="+1 415 555 0136")
    assert list(tenant_client(live).incoming_phone_numbers.list()) == []
    assert PhoneNumber.objects.for_tenant(live).get().released_at is not None
    assert AuditEvent.objects.filter(action="number.release", target=pn["sid"]).count() == 1


def test_page_shows_drift_and_fix_for_admins(client, live, sandbox, tenant_admin):
    seed(sandbox, live, "+14155550137", SmsUrl="https://old.example.com/sms")
    seed(sandbox, live, "+14155550138", **GOOD)
    client.force_login(tenant_admin)
    response = client.post(reverse("number_sync", kwargs={"tenant_slug": live.slug}))
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="number.sync", tenant=live).exists()
    page = client.get(reverse("number_list", kwargs={"tenant_slug": live.slug}))
    html = page.content.decode()
    assert "+14155550137" in html and "+14155550138" in html
    assert "DRIFT" in html and "1 number with webhook drift" in html and "Fix webhooks" in html
    drift_only = client.get(reverse("number_list", kwargs={"tenant_slug": live.slug}), {"drift": "on"})
    assert "+14155550137" in drift_only.content.decode() and "+14155550138" not in drift_only.content.decode()
    sms_search = client.get(reverse("number_list", kwargs={"tenant_slug": live.slug}), {"q": "0138"})
    assert "+14155550137" not in sms_search.content.decode()


def test_page_lookup_box_still_opens_history(client, tenant, tenant_admin):
    client.force_login(tenant_admin)
    response = client.get(reverse("number_list", kwargs={"tenant_slug": tenant.slug}), {"phone": "+14155550123"})
    # By the number's opaque reference: the URL it lands on never holds the number.
    assert response.status_code == 302 and response["Location"].endswith("/history/")
    assert "4155550123" not in response["Location"]
    history = client.get(response["Location"])
    assert history.status_code == 200 and "+14155550123" in history.content.decode()


def test_support_sees_own_numbers_whole_and_no_buttons(client, live, sandbox, support_user):
    """The tenant's own numbers are public business numbers: shown whole, even to support."""
    seed(sandbox, live, "+14155550139", SmsUrl="https://old.example.com/sms")
    numbers.numbers_sync(tenant=live)
    client.force_login(support_user)
    html = client.get(reverse("number_list", kwargs={"tenant_slug": live.slug})).content.decode()
    assert "+14155550139" in html and "******0139" not in html
    assert "DRIFT" in html and "Fix webhooks" not in html and "Sync now" not in html


def test_another_tenants_numbers_never_listed(client, live, sandbox, tenant_admin):
    other = TenantFactory(slug="initech")
    sandbox.register_account(other.account_sid, other.auth_token.reveal())
    seed(sandbox, other, "+14155550140", **GOOD)
    seed(sandbox, live, "+14155550141", **GOOD)
    numbers.numbers_sync(tenant=other)
    numbers.numbers_sync(tenant=live)
    assert list(numbers.numbers_list(tenant=live).values_list("phone_number", flat=True)) == ["+14155550141"]
    client.force_login(tenant_admin)
    html = client.get(reverse("number_list", kwargs={"tenant_slug": live.slug})).content.decode()
    assert "+14155550141" in html and "+14155550140" not in html
    theirs = PhoneNumber.objects.for_tenant(other).get()
    for name in ("number_fix_webhooks", "number_release"):
        url = reverse(name, kwargs={"tenant_slug": live.slug, "sid": theirs.sid})
        assert client.post(url, {"confirm": theirs.phone_number}).status_code == 404


def test_beat_job_syncs_every_active_tenant(live, sandbox):
    from tenants.schedules import PERIODIC_TASKS
    from tenants.tasks import numbers_sync_all

    seed(sandbox, live, "+14155550142", **GOOD)
    assert numbers_sync_all()["synced"] >= 1
    assert numbers.numbers_list(tenant=live).count() == 1
    assert any(job["task"] == "tenants.tasks.numbers_sync_all" for job in PERIODIC_TASKS)


def test_twilio_error_is_shown_with_its_explanation(client, live, sandbox, tenant_admin):
    from sandbox.state import Fault

    sandbox.add_fault(Fault(path_contains="IncomingPhoneNumbers", status=401, code=20003))
    client.force_login(tenant_admin)
    response = client.post(reverse("number_sync", kwargs={"tenant_slug": live.slug}), follow=True)
    html = response.content.decode()
    assert "Sync failed: Twilio error 20003" in html
    assert not AuditEvent.objects.filter(action="number.sync").exists()
