"""factory-boy definitions for the voice models the tests build."""

from __future__ import annotations

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from tests.tenants.factories import PhoneNumberFactory, TenantFactory, random_sid
from voice.models import Call, CallFlow, CallFlowVersion, Recording

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
    """A flow on one of `tenant`'s numbers with one saved version (the definition is the flow
    engine's; calls only carry the version)."""
    number = PhoneNumberFactory(tenant=tenant, phone_number=phone_number, voice=True)
    flow = CallFlow.objects.create(tenant=tenant, phone_number=number, name="Main line")
    version = CallFlowVersion.objects.create(tenant=tenant, flow=flow, number=1, definition={"steps": {}})
    CallFlow.objects.for_tenant(tenant).filter(pk=flow.pk).update(current_version=version)
    return version
