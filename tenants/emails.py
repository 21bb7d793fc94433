"""Email addresses as each viewer may see them: whole, or masked for support staff.

The email counterpart of `tenants.phones.phone_for_viewer`, with the same rule: support staff
read every tenant's logs and exports with customers' addresses masked.
"""

from __future__ import annotations

import re


def email_mask(value: str) -> str:
    """`ana.lopez@example.com` -> `a***@e***.com`: the first letter of the mailbox and of the
    domain, and the top-level domain. Anything that isn't an address keeps its first character."""
    if not value:
        return ""
    text = str(value)
    local, at, domain = text.rpartition("@")
    if not at or not local:
        return text[:1] + "***"
    name, dot, tld = domain.rpartition(".")
    masked_domain = f"{name[:1]}***.{tld}" if dot and name else f"{domain[:1]}***"
    return f"{local[:1]}***@{masked_domain}"


def email_for_viewer(value: str | None, *, access) -> str:
    """`value` whole, or masked when `access` (a `TenantAccess`) masks customers' details."""
    if not value:
        return ""
    if access is None or not access.masks_numbers:
        return str(value)
    return email_mask(str(value))


_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


def email_text_mask(text: str) -> str:
    """Free text (a bounce reason, an error) with every address in it masked."""
    return _ADDRESS.sub(lambda match: email_mask(match.group(0)), text or "")


def email_text_for_viewer(text: str | None, *, access) -> str:
    """Free text as this viewer may see it: the addresses in it masked for support staff."""
    if access is None or not access.masks_numbers:
        return text or ""
    return email_text_mask(text or "")
