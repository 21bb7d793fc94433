"""factory-boy definitions for the messaging models the tests build: messages, ledger events,
reviews, keywords, templates and bulk sends, at chosen times."""

from __future__ import annotations

from datetime import datetime, timedelta

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from messaging.ledgers.services import consent_record
from messaging.models import (
    BulkSend,
    ConsentEvent,
    Message,
    MessageEvent,
    MessageTemplate,
    OptOutEvent,
    RevocationReview,
    TenantKeyword,
)
from tests.tenants.factories import TenantFactory, random_sid

CUSTOMER = "+14155550100"
OTHER_CUSTOMER = "+14155550111"
OUR_NUMBER = "+14155550199"
SERVICE = "MG" + "b" * 32


def ago(**kwargs) -> datetime:
    return timezone.now() - timedelta(**kwargs)


class MessageFactory(DjangoModelFactory):
    """A message between `customer` and `ours` (sides follow `direction`); `at=` backdates
    `created_at`, which auto_now_add would otherwise pin to now."""

    class Meta:
        model = Message

    class Params:
        customer = CUSTOMER
        ours = OUR_NUMBER

    tenant = factory.SubFactory(TenantFactory)
    direction = "outbound"
    sid = factory.LazyFunction(lambda: random_sid("SM"))
    from_number = factory.LazyAttribute(lambda o: o.customer if o.direction == "inbound" else o.ours)
    to_number = factory.LazyAttribute(lambda o: o.ours if o.direction == "inbound" else o.customer)
    status = "delivered"
    body = "Hello from Acme"

    @classmethod
    def _create(cls, model_class, *args, at: datetime | None = None, **kwargs):
        message = super()._create(model_class, *args, **kwargs)
        if at is not None:
            model_class.all_tenants.filter(pk=message.pk).update(created_at=at)
            message.created_at = at
        return message


class MessageEventFactory(DjangoModelFactory):
    class Meta:
        model = MessageEvent

    message = factory.SubFactory(MessageFactory)
    tenant = factory.SelfAttribute("message.tenant")
    status = "delivered"
    occurred_at = factory.LazyFunction(timezone.now)
    payload = factory.LazyAttribute(lambda o: {"MessageStatus": o.status, "To": o.message.to_number})


class OptOutEventFactory(DjangoModelFactory):
    class Meta:
        model = OptOutEvent

    tenant = factory.SubFactory(TenantFactory)
    phone = CUSTOMER
    action = "opt_out"
    source = "keyword"
    created_at = factory.LazyFunction(timezone.now)


class ConsentEventFactory(DjangoModelFactory):
    """Recorded through consent_record, as the portal records it (disclosure row, opt-out link)."""

    class Meta:
        model = ConsentEvent

    tenant = factory.SubFactory(TenantFactory)
    phone = CUSTOMER
    purpose = "marketing"
    action = "granted"
    method = "web_form"
    disclosure_text = "Acme marketing: up to 4 msgs/month. Reply STOP to cancel."
    disclosure_version = "v1"
    captured_at = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return consent_record(**kwargs)


class RevocationReviewFactory(DjangoModelFactory):
    """An open review of an inbound message from `phone` received `received_at` (a day ago)."""

    class Meta:
        model = RevocationReview

    class Params:
        body = "please stop texting me"

    tenant = factory.SubFactory(TenantFactory)
    phone = CUSTOMER
    received_at = factory.LazyFunction(lambda: ago(days=1))
    deadline_at = factory.LazyAttribute(lambda o: o.received_at + timedelta(days=14))
    message = factory.SubFactory(
        MessageFactory,
        tenant=factory.SelfAttribute("..tenant"),
        direction="inbound",
        customer=factory.SelfAttribute("..phone"),
        status="received",
        body=factory.SelfAttribute("..body"),
        at=factory.SelfAttribute("..received_at"),
    )


class TenantKeywordFactory(DjangoModelFactory):
    class Meta:
        model = TenantKeyword

    tenant = factory.SubFactory(TenantFactory)
    kind = "opt_out"
    word = factory.Sequence(lambda n: f"WORD{n}")


class MessageTemplateFactory(DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Template {n}")
    purpose = "transactional"
    body = "Hi {{name}}"


class BulkSendFactory(DjangoModelFactory):
    class Meta:
        model = BulkSend

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    template = factory.SubFactory(MessageTemplateFactory, tenant=factory.SelfAttribute("..tenant"))
    purpose = factory.SelfAttribute("template.purpose")
