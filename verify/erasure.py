"""Verify's part of a GDPR erasure (`tenants.registry.number_erasers`): the number in the
tenant's verifications and their send log becomes the erasure's marker, and the client IPs
recorded with them go. The consent events the verifications led to are messaging's to redact."""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import Q

from tenants.registry import NumberEraser, NumberErasure

from .models import Verification, VerificationSend


def verifications_erase(erasure: NumberErasure) -> None:
    tenant, phone, marker = erasure.tenant, erasure.phone, erasure.marker
    rows = Verification.objects.for_tenant(tenant).filter(Q(to=phone) | Q(phone=phone))
    erasure.counts["verifications"] = rows.count()
    rows.filter(to=phone).update(to=marker, client_ip=None)
    rows.filter(phone=phone).update(phone=marker, client_ip=None)
    erasure.counts["verification_sends"] = (
        VerificationSend.objects.for_tenant(tenant).filter(to=phone).update(to=marker, client_ip=None)
    )


def _describe(counts: Mapping[str, int | bool]) -> str:
    return f"{counts.get('verifications', 0)} verification(s) and {counts.get('verification_sends', 0)} code send(s)"


VERIFY_ERASER = NumberEraser(key="verify", erase=verifications_erase, describe=_describe, order=150)
