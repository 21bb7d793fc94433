"""factory-boy definitions for the tenants models the tests build.

Credentials are random per row (`secrets`), so no test depends on, or leaks, a fixed token.
"""

from __future__ import annotations

import secrets

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from factory.django import DjangoModelFactory

from tenants.models import SUPPORT_GROUP, AuditEvent, Membership, PhoneNumber, Tenant

PASSWORD = "correct-horse-battery-staple"


def random_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class TenantFactory(DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    account_sid = factory.LazyFunction(lambda: random_sid("AC"))
    auth_token = factory.LazyFunction(lambda: secrets.token_hex(16))


class UserFactory(DjangoModelFactory):
    """A user with PASSWORD; `tenant=`/`role=` add a membership, `support=True` the support group,
    `superuser=True` makes an operator (staff + superuser)."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    class Params:
        superuser = factory.Trait(is_superuser=True, is_staff=True)

    username = factory.Sequence(lambda n: f"user-{n}")

    @classmethod
    def _create(cls, model_class, *args, tenant=None, role=None, support=False, **kwargs):
        user = model_class._default_manager.create_user(*args, password=PASSWORD, **kwargs)
        if tenant is not None:
            MembershipFactory(user=user, tenant=tenant, **({"role": role} if role else {}))
        if support:
            user.groups.add(Group.objects.get_or_create(name=SUPPORT_GROUP)[0])
        return user


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Membership.Role.VIEWER


class AuditEventFactory(DjangoModelFactory):
    class Meta:
        model = AuditEvent

    tenant = factory.SubFactory(TenantFactory)
    action = "tenant.updated"


class PhoneNumberFactory(DjangoModelFactory):
    """A synced number of a tenant's inventory (what the send form offers as From)."""

    class Meta:
        model = PhoneNumber

    tenant = factory.SubFactory(TenantFactory)
    sid = factory.LazyFunction(lambda: random_sid("PN"))
    phone_number = factory.Sequence(lambda n: f"+1415555{n % 10000:04d}")
    sms = True
    synced_at = factory.LazyFunction(timezone.now)
