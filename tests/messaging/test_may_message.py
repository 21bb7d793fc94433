""" "May we message this number?" has one answer (`messaging.ledgers.reachability`): opted out in
the ledger, or erased under GDPR. The copies it replaced disagreed on erased numbers."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.ledgers.history import number_history
from messaging.ledgers.reachability import IN_LIST_LIMIT, number_is_opted_out, numbers_opted_out
from messaging.ledgers.selectors import opt_out_latest
from messaging.ledgers.services import opt_in_record, opt_out_record
from tenants.audit import AuditContext
from tenants.retention import number_erase
from tests.tenants.factories import UserFactory

ERASED = "+14155550142"
OPTED_OUT = "+14155550143"
OPTED_BACK_IN = "+14155550144"
NEVER = "+14155550145"


@pytest.fixture
def numbers(tenant, django_user_model):
    operator = UserFactory(username="olga-operator", superuser=True)
    opt_out_record(tenant=tenant, phone=ERASED, source="keyword", keyword="STOP")
    opt_out_record(tenant=tenant, phone=OPTED_OUT, source="admin")
    opt_out_record(tenant=tenant, phone=OPTED_BACK_IN, source="admin")
    opt_in_record(tenant=tenant, phone=OPTED_BACK_IN, source="admin")
    number_erase(tenant=tenant, phone=ERASED, audit=AuditContext.of(operator), reason="GDPR request")
    return tenant


def test_single_and_batch_forms_agree(numbers):
    tenant = numbers
    everyone = [ERASED, OPTED_OUT, OPTED_BACK_IN, NEVER]
    assert numbers_opted_out(tenant=tenant, phones=everyone) == {ERASED, OPTED_OUT}
    assert [number_is_opted_out(tenant=tenant, phone=p) for p in everyone] == [True, True, False, False]


def test_an_erased_number_stays_off_limits_although_its_ledger_forgot_it(numbers):
    """The ledger-only copies (selectors, the number history) called an erased number reachable."""
    assert opt_out_latest(tenant=numbers, phone=ERASED) is None
    assert number_is_opted_out(tenant=numbers, phone=ERASED)
    assert number_history(tenant=numbers, phone=ERASED).is_opted_out
    assert number_history(tenant=numbers, phone=ERASED).twilio_block is None


def test_scoped_to_the_tenant(numbers, other_tenant):
    assert numbers_opted_out(tenant=other_tenant, phones=[ERASED, OPTED_OUT]) == set()


@pytest.mark.parametrize("count", [10, IN_LIST_LIMIT + 10])
def test_batch_is_set_based(numbers, count):
    """A constant number of queries whatever the batch size: the bulk benchmark depends on it."""
    phones = [f"+1415666{i:04d}" for i in range(count)] + [ERASED, OPTED_OUT]
    with CaptureQueriesContext(connection) as queries:
        assert numbers_opted_out(tenant=numbers, phones=phones) == {ERASED, OPTED_OUT}
    assert len(queries) <= 3  # ledger, suppression key, suppression hashes


def test_empty_batch_makes_no_query(tenant, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert numbers_opted_out(tenant=tenant, phones=[]) == set()
