"""Email contents go with the tenant's retention period; the log row and events stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tenants import retention
from verify.models import EmailMessage

pytestmark = pytest.mark.django_db


def email(tenant, *, age_days, status="delivered"):
    row = EmailMessage.objects.create(
        tenant=tenant,
        to_email="ana@example.com",
        subject="Receipt",
        text="You agreed.",
        html="<p>You agreed.</p>",
        dynamic_data={"name": "Ana"},
        category="consent_receipt",
        status=status,
    )
    EmailMessage.all_tenants.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=age_days))
    return row


def test_old_email_contents_are_purged_and_the_log_row_kept(tenant, other_tenant):
    old, recent, waiting = (
        email(tenant, age_days=401),
        email(tenant, age_days=399),
        email(tenant, age_days=500, status="queued"),
    )
    theirs = email(other_tenant, age_days=401)
    report = retention.retention_purge_tenant(tenant=tenant)
    assert report.purged == 1
    purged = EmailMessage.all_tenants.get(pk=old.pk)
    assert (purged.text, purged.html, purged.dynamic_data) == ("", "", {})
    assert (purged.to_email, purged.subject, purged.status) == ("ana@example.com", "Receipt", "delivered")
    for kept in (recent, waiting, theirs):
        assert EmailMessage.all_tenants.get(pk=kept.pk).text == "You agreed."
    assert retention.retention_purge_tenant(tenant=tenant).purged == 0  # nothing twice
