"""One masking rule on every page support staff can open (the isolation matrix's pages).

A customer's number never reaches a support viewer in any form (E.164, national, digits only:
in text, attributes, links or JSON); the tenant's own Twilio numbers are public business
numbers and are shown whole to everyone with access.
"""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from messaging.number_refs import number_ref
from tenants.scoping import TenantAccess
from tests.messaging.factories import OUR_NUMBER, MessageEventFactory, MessageFactory, OptOutEventFactory
from tests.tenants.test_isolation import CUSTOMER, PAGES, _bulk, ctx  # noqa: F401  (ctx is a fixture)

BULK_RECIPIENT = "+14155550134"
INBOUND_CUSTOMER = "+14155550111"
CUSTOMERS = (CUSTOMER, BULK_RECIPIENT, INBOUND_CUSTOMER)


def _forms(e164: str) -> list[str]:
    """Every way a US number may be printed: E.164, national, dotted/dashed, digits only."""
    digits = e164[2:]
    area, exchange, line = digits[:3], digits[3:6], digits[6:]
    return [
        e164,
        e164[1:],
        digits,
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"{area}.{exchange}.{line}",
        f"{area} {exchange} {line}",
    ]


@pytest.fixture
def seeded(ctx):  # noqa: F811
    from tenants.models import PhoneNumber

    tenant = ctx["tenant"]
    PhoneNumber.objects.create(
        tenant=tenant,
        sid="PN" + "a" * 32,
        phone_number=OUR_NUMBER,
        friendly_name="(415) 555-0199",
        synced_at=timezone.now(),
    )
    inbound = MessageFactory(tenant=tenant, direction="inbound", customer=INBOUND_CUSTOMER, status="received")
    MessageEventFactory(message=inbound, status="received")
    MessageEventFactory(message=ctx["message"], status="delivered")
    OptOutEventFactory(tenant=tenant, phone=INBOUND_CUSTOMER)
    bulk = _bulk(ctx, "running")
    bulk.sender = OUR_NUMBER  # a sender is one of the tenant's numbers
    bulk.save(update_fields=["sender"])
    MessageFactory(tenant=tenant, customer=BULK_RECIPIENT, status="undelivered", error_code=30003, bulk_send=bulk)
    _seed_free_texts(ctx, inbound)
    return ctx


def _twilio_refusal(e164: str) -> str:
    """A failure reason as the SDK words it: the number quoted, and again URL-encoded in the URL."""
    return (
        f"HTTP 400 error: Unable to create record: The 'To' number {e164} is not a valid phone number. "
        f"https://api.twilio.com/2010-04-01/Accounts/AC{'0' * 32}/Messages.json?To=%2B{e164[1:]}"
    )


def _seed_free_texts(ctx, inbound):  # noqa: F811
    """Customer numbers inside the free texts support pages show: failure reasons, bodies, notes."""
    from messaging.models import ConsentEvent, OptOutEvent

    tenant, digits = ctx["tenant"], CUSTOMER[2:]
    message = ctx["message"]
    message.status, message.failure_reason = "failed", _twilio_refusal(CUSTOMER) + f" (retried {CUSTOMER[1:]})"
    message.body = f"Call us back from {digits} or ({digits[:3]}) {digits[3:6]}-{digits[6:]}, from {OUR_NUMBER}"
    message.save(update_fields=["status", "failure_reason", "body"])
    inbound.body = f"STOP texting {INBOUND_CUSTOMER[1:]} and %2B{INBOUND_CUSTOMER[1:]}"
    inbound.save(update_fields=["body"])
    OptOutEvent.objects.for_tenant(tenant).update(reason=f"Asked by phone from {INBOUND_CUSTOMER}")
    ConsentEvent.objects.for_tenant(tenant).update(source=f"form?phone=%2B{CUSTOMER[1:]}", note=f"Said {digits}")
    review = ctx["review"]
    review.message.body = f"please stop, this is {CUSTOMER}"
    review.message.save(update_fields=["body"])


def _support_urls(ctx):  # noqa: F811
    tenant = ctx["tenant"]
    for name, (kwargs, expected) in sorted(PAGES.items()):
        if expected["support"] != 200:
            continue
        kwargs = kwargs(ctx) if callable(kwargs) else dict(kwargs)
        if "number" in kwargs:  # links carry the opaque reference, never the number
            kwargs["number"] = number_ref(kwargs["number"], tenant=tenant)
        yield name, reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})
    history = reverse(
        "number_history",
        kwargs={"tenant_slug": tenant.slug, "number": number_ref(CUSTOMER, tenant=tenant)},
    )
    yield "number_history.csv", f"{history}?format=csv"
    yield "number_history.json", f"{history}?format=json"
    yield "support_overview", "/support/"


def test_support_never_sees_a_customer_number(client, seeded):
    client.force_login(seeded["users"]["support"])
    leaks = []
    for name, url in _support_urls(seeded):
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        raw = b"".join(response.streaming_content) if response.streaming else response.content
        body = raw.decode()
        for customer in CUSTOMERS:
            for form in _forms(customer):
                if form in body:
                    at = body.index(form)
                    leaks.append((name, form, body[max(at - 80, 0) : at + 40]))
    assert not leaks, "\n".join(map(repr, leaks))


def test_own_number_shown_whole_to_support(client, seeded):
    client.force_login(seeded["users"]["support"])
    body = client.get(reverse("number_list", kwargs={"tenant_slug": seeded["tenant"].slug})).content.decode()
    assert OUR_NUMBER in body
    assert not re.search(r"\+1\*+0199", body)  # not masked on one line and whole on the next
    log = client.get(reverse("message_list", kwargs={"tenant_slug": seeded["tenant"].slug})).content.decode()
    assert OUR_NUMBER in log and "+1******0100" in log  # the sender whole, the customer masked


def test_members_see_customer_numbers(client, seeded):
    client.force_login(seeded["users"]["viewer_a"])
    body = client.get(reverse("message_list", kwargs={"tenant_slug": seeded["tenant"].slug})).content.decode()
    assert CUSTOMER in body and OUR_NUMBER in body


def test_failure_text_masked_for_support_only(rf, seeded):
    from django.template import Context, Template

    template = Template("{% load portal %}{% phone_text text %}")
    text = _twilio_refusal(CUSTOMER) + f", sent from {OUR_NUMBER}"
    own = {OUR_NUMBER}
    shown = template.render(
        Context({"text": text, "tenant_access": TenantAccess("support"), "tenant_own_numbers": own})
    )
    assert "+1******0100" in shown and "To=%2B1******0100" in shown
    assert OUR_NUMBER in shown  # the tenant's own number stays whole
    member = template.render(Context({"text": text, "tenant_access": TenantAccess("viewer")}))
    assert CUSTOMER in member and f"%2B{CUSTOMER[1:]}" in member


def test_phone_text_mask_forms():
    from tenants.phones import phone_text_mask

    text = (
        "a +14155550100 b %2B14155550100 c %252B14155550100 d 14155550100 e 4155550100 "
        "f (415) 555-0100 g +1 415 555 0100 own +14155550199 "
        f"sid SM{'1234567890' * 3}ab date 2026-12-03 epoch 1733230000 code 21610"
    )
    masked = phone_text_mask(text, own_numbers={"+14155550199"})
    assert "555010" not in masked.replace("0199", "")
    assert "%2B1******0100" in masked and "%252B1******0100" in masked
    assert "+14155550199" in masked
    assert f"SM{'1234567890' * 3}ab" in masked and "2026-12-03" in masked and "1733230000" in masked
    assert phone_text_mask(masked, own_numbers={"+14155550199"}) == masked  # idempotent: log handlers share records
