"""Every main page fits a 360 px phone without scrolling sideways, and screenshots of them at
desktop (1280) and phone (390) widths go to var/screenshots/ for people to look at."""

from __future__ import annotations

import pytest

from tests.browser.portal import MAIN_PAGES, TENANT_A
from tests.stack import BASE_DIR

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCREENSHOTS = BASE_DIR / "var" / "screenshots"


def _path(name: str, stack) -> str:
    return MAIN_PAGES[name].format(slug=TENANT_A, message=next(iter(stack.messages.values())))


@pytest.mark.parametrize("name", list(MAIN_PAGES))
def test_page_has_no_horizontal_scroll_at_360px(open_page, stack, name):
    page = open_page("admin", _path(name, stack), width=360)
    widths = page.evaluate("() => ({scroll: document.documentElement.scrollWidth, viewport: window.innerWidth})")
    assert widths["scroll"] <= widths["viewport"], f"{name} scrolls sideways at 360 px: {widths}"


@pytest.mark.parametrize("width", [1280, 390])
def test_screenshots_of_the_main_pages(open_page, stack, width):
    folder = SCREENSHOTS / str(width)
    folder.mkdir(parents=True, exist_ok=True)
    page = open_page("admin", "/", width=width)
    for name in MAIN_PAGES:
        page.goto(_path(name, stack))
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        assert (folder / f"{name}.png").stat().st_size > 0
