"""Parallel code sends (PostgreSQL): the abuse limits are checked and the send logged as one step
per number and per client address, so a burst of requests cannot all pass the check before the
first send is logged (each would have cost an SMS: toll fraud's favourite pattern)."""

from __future__ import annotations

import threading
import time

import pytest

from tenants.locks import transaction_locks
from tests.concurrency import postgresql_required, run_concurrently
from tests.conftest import services_required
from tests.tenants.factories import TenantFactory, random_sid
from verify.codes import CodeError, code_send, twilio_verify
from verify.models import StaffVerificationSend, VerificationSend

TO = "+14155550142"


@pytest.fixture
def postgresql():
    postgresql_required(services_required())


@pytest.fixture
def slow_verify(monkeypatch):
    """Verify accepting each start after 0.4 s (the window in which parallel checks all passed);
    the numbers it was asked to send to."""
    asked: list[str] = []
    lock = threading.Lock()

    def verify_start(*, scope, to, channel):
        with lock:
            asked.append(to)
        time.sleep(0.4)
        return random_sid("VE"), "pending"

    monkeypatch.setattr(twilio_verify, "verify_start", verify_start)
    return asked


def _limited_by_interval(errors) -> bool:
    return all(isinstance(e, CodeError) and (e.kind, e.reason) == ("limited", "interval") for e in errors)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_parallel_sends_to_one_number_send_one_code(postgresql, slow_verify):
    tenant = TenantFactory(slug="code-race")
    sent = []
    addresses = [f"198.51.100.{n}" for n in range(1, 7)]

    errors = run_concurrently(
        lambda ip: sent.append(code_send(tenant=tenant, to=TO, purpose="consent", client_ip=ip)), addresses
    )

    assert len(sent) == 1 and slow_verify == [TO]
    assert len(errors) == 5 and _limited_by_interval(errors), errors
    assert VerificationSend.objects.for_tenant(tenant).count() == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_parallel_sends_from_one_address_to_many_numbers_send_one_code(postgresql, slow_verify):
    numbers = [f"+1415555017{n}" for n in range(6)]
    sent = []

    errors = run_concurrently(
        lambda to: sent.append(code_send(tenant=None, to=to, purpose="second_factor", client_ip="203.0.113.9")),
        numbers,
    )

    assert len(sent) == 1 and len(slow_verify) == 1
    assert len(errors) == 5 and _limited_by_interval(errors), errors
    assert StaffVerificationSend.objects.count() == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_sends_to_other_numbers_from_other_addresses_do_not_wait_on_each_other(postgresql, slow_verify):
    tenant = TenantFactory(slug="code-race")
    pairs = [(f"+1415555018{n}", f"192.0.2.{n + 1}") for n in range(4)]
    started = time.monotonic()

    errors = run_concurrently(
        lambda pair: code_send(tenant=tenant, to=pair[0], purpose="consent", client_ip=pair[1]), pairs
    )

    assert errors == []
    assert sorted(slow_verify) == sorted(to for to, _ in pairs)
    assert time.monotonic() - started < 4 * 0.4  # in parallel, not one after another


def test_the_locks_need_a_transaction():
    with pytest.raises(Exception, match="atomic"):
        transaction_locks("code-send:platform:to:+14155550142")
