"""Each CSV export, downloaded by Chromium from its page, starts with its documented header."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.portal import EXPORTS, TENANT_A

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.mark.parametrize("name", list(EXPORTS))
def test_export_downloads_with_its_header(open_page, name):
    page_path, export_path, header = (p.format(slug=TENANT_A) for p in EXPORTS[name])
    page = open_page("admin", page_path)
    served = page.request.get(export_path)
    assert served.status == 200, f"{export_path}: {served.status}"
    link = page.locator(f'a[href$="{export_path}"], a[href*="{export_path}?"]')
    with page.expect_download() as started:
        if link.count():
            link.first.click()
        else:  # no link on the page (yet): the browser downloads the URL as a link would
            page.evaluate(
                "url => { const a = document.createElement('a'); a.href = url; a.download = '';"
                " document.body.append(a); a.click(); }",
                export_path,
            )
    download = started.value
    assert download.failure() is None, download.failure()
    assert download.suggested_filename.endswith(".csv"), download.suggested_filename
    first_line = Path(download.path()).read_text(encoding="utf-8-sig").splitlines()[0]
    assert first_line == header
