"""The Content-Security-Policy as Chromium enforces it: no main page, nor the sign-in page,
reports a violation (a blocked inline script, handler or style, or a resource from elsewhere).
The template scan in tests/tenants/test_security_headers.py catches the markup; this catches
what only a browser sees (Bootstrap's own scripts and styles under the policy)."""

from __future__ import annotations

import pytest

from tests.browser.portal import MAIN_PAGES, TENANT_A

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  var blocked = e.blockedURI || "inline";
  window.__cspViolations.push(e.violatedDirective + " blocked " + blocked + " at line " + e.lineNumber);
});
"""


def _violations(context, path: str) -> list[str]:
    page = context.new_page()
    try:
        page.add_init_script(RECORD_VIOLATIONS)
        response = page.goto(path)
        assert response.status == 200, f"GET {path}: {response.status}"
        page.wait_for_load_state("load")
        return page.evaluate("window.__cspViolations")
    finally:
        page.close()


def test_main_pages_report_no_policy_violation(portal, stack):
    context = portal.context("admin")
    found = {}
    for name, path in MAIN_PAGES.items():
        violations = _violations(context, path.format(slug=TENANT_A, message=next(iter(stack.messages.values()))))
        if violations:
            found[name] = violations
    assert not found, found


def test_the_sign_in_page_reports_no_policy_violation(portal):
    context = portal.new_context()
    try:
        assert _violations(context, "/accounts/login/") == []
    finally:
        context.close()
