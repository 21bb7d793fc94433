"""SendGrid's Event Webhook never answers a 5xx, whatever the body: hostile batches signed with
the sandbox's key (strings with NULs, huge numbers, wrong types, unknown tenants), and hostile
unsigned requests, which write nothing.

NULs and integer ranges only fail on PostgreSQL: run this file with DATABASE_URL pointing at one.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.verify.conftest import EVENTS_PATH
from verify.models import EmailEvent, EmailSuppression

pytestmark = pytest.mark.django_db

FUZZ = hypothesis_settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EVENTS = ["processed", "delivered", "bounce", "dropped", "deferred", "spamreport", "unsubscribe",
          "group_unsubscribe", "group_resubscribe", "open", "click"]  # fmt: skip
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("\x00 @.+-abc019"), max_size=60),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.just("x" * 5000),
)
hostile_scalar = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | hostile_text
)
json_value = st.recursive(
    hostile_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def hostile_event(tenant_id: str):
    return st.fixed_dictionaries(
        {"sg_event_id": hostile_text | json_value, "tenant": st.sampled_from([tenant_id, "0", "-1", "x"]) | json_value},
        optional={
            "event": st.sampled_from(EVENTS) | json_value,
            "email": hostile_text | json_value,
            "email_id": hostile_text | json_value,
            "timestamp": json_value,
            "asm_group_id": json_value,
            "reason": json_value,
            "type": st.sampled_from(["bounce", "blocked"]) | json_value,
            "sg_message_id": json_value,
        },
    )


@FUZZ
@given(data=st.data())
def test_signed_hostile_batch_never_5xx(sendgrid_webhook, tenant, data):
    batch = data.draw(st.lists(hostile_event(str(tenant.pk)) | json_value, max_size=6))
    response = sendgrid_webhook.post(batch)
    assert response.status_code == 200, response.content


@FUZZ
@given(
    body=st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | json_value.map(lambda v: json.dumps(v).encode())
)
def test_signed_hostile_body_is_2xx_or_400(sendgrid_webhook, body):
    text = body.decode("utf-8", errors="replace")
    response = sendgrid_webhook.post(None, body=text)
    assert response.status_code in (200, 400), response.content


@FUZZ
@given(signature=hostile_text, timestamp=hostile_text, body=hostile_text)
def test_unsigned_hostile_requests_are_403_and_write_nothing(
    client, tenant, sandbox_settings, signature, timestamp, body
):
    headers = {
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": signature.replace("\x00", ""),
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": timestamp.replace("\x00", ""),
    }
    response = client.post(EVENTS_PATH, body, content_type="application/json", **headers)
    assert response.status_code == 403
    assert not EmailEvent.all_tenants.exists() and not EmailSuppression.all_tenants.exists()


def test_signed_deeply_nested_body_is_400_not_500(sendgrid_webhook):
    assert sendgrid_webhook.post(None, body="[" * 100000 + "]" * 100000).status_code == 400


def test_signed_batch_with_a_nul_in_every_field_is_stored(sendgrid_webhook, tenant):
    event = {"sg_event_id": "a\x00b", "tenant": str(tenant.pk), "event": "bounce\x00", "email": "a\x00@example.com",
             "timestamp": int(time.time()), "reason": "\x00"}  # fmt: skip
    assert sendgrid_webhook.post([event]).status_code == 200
    assert EmailEvent.objects.for_tenant(tenant).get().sg_event_id == "ab"
