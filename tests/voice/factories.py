"""factory-boy definitions for the voice models the tests build."""

from __future__ import annotations

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from tenants.audit import SYSTEM
from tests.tenants.factories import PhoneNumberFactory, TenantFactory, random_sid
from voice.flows.schema import default_definition
from voice.flows.services import call_flow_save
from voice.models import Call, CallFlowVersion, Recording

CALLER = "+14155550123"
OUR_NUMBER = "+14155550100"


class CallFactory(DjangoModelFactory):
    class Meta:
        model = Call

    tenant = factory.SubFactory(TenantFactory)
    sid = factory.LazyFunction(lambda: random_sid("CA"))
    direction = "inbound"
    from_number = CALLER
    to_number = OUR_NUMBER
    status = "completed"
    duration = 30
    status_updated_at = factory.LazyFunction(timezone.now)


class RecordingFactory(DjangoModelFactory):
    class Meta:
        model = Recording

    call = factory.SubFactory(CallFactory)
    tenant = factory.SelfAttribute("call.tenant")
    sid = factory.LazyFunction(lambda: random_sid("RE"))
    call_sid = factory.SelfAttribute("call.sid")
    status = "completed"
    duration = 7


def flow_version_create(tenant, *, phone_number: str = OUR_NUMBER) -> CallFlowVersion:
    """A flow (the engine's default definition, saved as version 1) on one of `tenant`'s numbers."""
    number = PhoneNumberFactory(tenant=tenant, phone_number=phone_number, voice=True)
    return call_flow_save(tenant=tenant, number=number, name="Main line", definition=default_definition(), audit=SYSTEM)
