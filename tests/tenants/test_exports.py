"""CSV exports neutralise spreadsheet formulas (CSV injection) without mangling numbers."""

from __future__ import annotations

import csv
import io

import pytest

from tenants.exports import safe_row, spreadsheet_safe
from tests.tenants.factories import TenantFactory


@pytest.mark.parametrize(
    "value",
    ['=HYPERLINK("http://evil.example","click")', "+cmd|' /C calc'!A0", "-2+3+cmd|x", "@SUM(A1:A9)", "\t=1", "\r=1"],
)
def test_formulas_are_written_as_text(value):
    assert spreadsheet_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["+14155550100", "+1******0100", "-3", "0.25", "Hello = world", "", None, 7])
def test_everything_else_is_left_alone(value):
    assert spreadsheet_safe(value) == value


def test_safe_row():
    assert safe_row(["=1+1", "+14155550100", 3]) == ["'=1+1", "+14155550100", 3]


@pytest.mark.django_db
def test_support_overview_csv_neutralises_a_formula_in_a_tenant_name(client, support_user, tenant):
    TenantFactory(slug="evil", name='=HYPERLINK("http://evil.example","Open")')
    client.force_login(support_user)
    response = client.get("/support/", {"format": "csv"})
    assert response.status_code == 200
    rows = {r["tenant"]: r for r in csv.DictReader(io.StringIO(response.content.decode()))}
    assert rows["evil"]["name"] == '\'=HYPERLINK("http://evil.example","Open")'
    assert rows[tenant.slug]["name"] == tenant.name
