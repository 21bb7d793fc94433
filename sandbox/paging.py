"""Twilio's two list shapes, which the SDK's paging follows: v2010's relative page URIs and
the v1/v2 domains' `meta` block with absolute URLs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from .errors import TwilioApiError
from .http import Reply, SandboxRequest
from .state import public


def page_window(req: SandboxRequest, default_size: int = 50) -> tuple[int, int]:
    try:
        size = max(1, min(int(req.get("PageSize") or default_size), 1000))
        page = max(0, int(req.get("Page") or 0))
    except ValueError:
        raise TwilioApiError(400, 20001, "Invalid paging parameters") from None
    return page, size


def v2010_page(req: SandboxRequest, key: str, items: list[dict[str, Any]]) -> Reply:
    """v2010 list shape: first/next/previous_page_uri relative to the API host."""
    page, size = page_window(req)
    start = page * size
    chunk = items[start : start + size]
    filters = [(k, v) for k, values in req.query.items() if k not in {"Page", "PageSize", "PageToken"} for v in values]

    def uri(n: int) -> str:
        paging = [("PageSize", size), ("Page", n)]
        if n:
            paging.append(("PageToken", f"PA{n * size}"))
        return f"{req.path}?{urlencode(filters + paging)}"

    return Reply(
        200,
        {
            key: [public(item) for item in chunk],
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if start + size < len(items) else None,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
            "page": page,
            "page_size": size,
            "start": start,
            "end": start + max(len(chunk) - 1, 0),
            "uri": uri(page),
        },
    )


def meta_page(req: SandboxRequest, key: str, items: list[dict[str, Any]]) -> Reply:
    """v1/v2 list shape: `meta` with absolute URLs (the SDK follows next_page_url)."""
    page, size = page_window(req)
    start = page * size
    chunk = items[start : start + size]
    base = f"http://{req.host}{req.path}"

    def url(n: int) -> str:
        paging = {"PageSize": size, "Page": n}
        if n:
            paging["PageToken"] = f"PA{n * size}"
        return f"{base}?{urlencode(paging)}"

    return Reply(
        200,
        {
            key: [public(item) for item in chunk],
            "meta": {
                "page": page,
                "page_size": size,
                "first_page_url": url(0),
                "previous_page_url": url(page - 1) if page > 0 else None,
                "url": url(page),
                "next_page_url": url(page + 1) if start + size < len(items) else None,
                "key": key,
            },
        },
    )
