"""One append-only guard (`tenants.models.AppendOnlyModel`) for every evidence model."""

from __future__ import annotations

import pytest
from django.apps import apps

from tenants.models import AppendOnlyModel, AuditEvent, SuppressionHash

APPEND_ONLY = {
    "tenants.AuditEvent",
    "tenants.SuppressionHash",
    "messaging.OptOutEvent",
    "messaging.ConsentEvent",
    "messaging.ConsentDisclosure",
}


def test_every_evidence_model_uses_the_one_guard():
    found = {model._meta.label for model in apps.get_models() if issubclass(model, AppendOnlyModel)}
    assert APPEND_ONLY <= found


@pytest.mark.parametrize("label", sorted(APPEND_ONLY))
def test_a_saved_row_can_be_neither_changed_nor_deleted(label):
    row = apps.get_model(label)(pk=1)
    with pytest.raises(ValueError, match="append-only"):
        row.save()
    with pytest.raises(ValueError, match="append-only"):
        row.delete()


def test_the_guard_runs_before_the_model_save():
    """Listed after the model base, the mixin's save would never run: the MRO must put it first."""
    for label in APPEND_ONLY:
        mro = apps.get_model(label).__mro__
        assert mro.index(AppendOnlyModel) < mro.index(next(c for c in mro if c.__name__ == "Model"))


def test_errors_name_the_rows():
    with pytest.raises(ValueError, match="^Audit events are append-only$"):
        AuditEvent(pk=1).delete()
    with pytest.raises(ValueError, match="^Suppression hashes are append-only$"):
        SuppressionHash(pk=1).save()
    with pytest.raises(ValueError, match="^OptOutEvent rows are append-only$"):
        apps.get_model("messaging.OptOutEvent")(pk=1).save()
