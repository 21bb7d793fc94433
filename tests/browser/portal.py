"""What the browser suite's stack holds (seeded by tests/browser/seed.py) and the pages it visits."""

from __future__ import annotations

TENANT_A, TENANT_B = "clinic-a", "clinic-b"
TENANT_NAMES = {TENANT_A: "Browser Clinic A", TENANT_B: "Browser Clinic B"}
# The tenants' own Twilio numbers: the only numbers support staff may see unmasked.
OUR_NUMBERS = {TENANT_A: "+14155550177", TENANT_B: "+14155550188"}
# role -> (username, `create_portal_user` options); `operator` is made by tests/stack.py.
USERS = {
    "admin": ("admin-a", ["--tenant", TENANT_A, "--role", "admin"]),
    "viewer": ("viewer-a", ["--tenant", TENANT_A, "--role", "viewer"]),
    "support": ("support-staff", ["--support"]),
    "operator": ("operator", None),
    "admin_b": ("admin-b", ["--tenant", TENANT_B, "--role", "admin"]),
}
# Customers of tenant A who text in before the tests start, through the sandbox, signed.
INBOUND = [
    ("+14155550161", "Is my appointment on Tuesday still on?"),
    ("+14155550162", "Can I move it to Friday?"),
    ("+14155550165", "STOP"),  # an opt-out in the ledger from the start
]
# A consent tenant A's staff recorded before the tests start.
CONSENTED = "+14155550166"
# Sent by tenant A before the tests start, and what the sandbox makes of each.
OUTBOUND = {"+14155550163": "delivered", "+15005550010": "undelivered"}  # 30003 unreachable handset

# The main pages of a tenant, by name; `{message}` is a seeded outbound message's id.
MAIN_PAGES = {
    "dashboard": "/t/{slug}/",
    "messages": "/t/{slug}/messages/",
    "message-detail": "/t/{slug}/messages/{message}/",
    "opt-outs": "/t/{slug}/opt-outs/",
    "consent": "/t/{slug}/consent/",
    "numbers": "/t/{slug}/numbers/",
    "send": "/t/{slug}/messages/send/",
    "templates": "/t/{slug}/templates/",
    "bulk": "/t/{slug}/bulk/",
    "settings": "/t/{slug}/settings/",
    "members": "/t/{slug}/members/",
    "audit": "/t/{slug}/audit/",
    "verifications": "/t/{slug}/verifications/",
    "consent-forms": "/t/{slug}/consent-forms/",
}
# The pages that only write or only admins see: support staff and viewers get 403 there.
ADMIN_ONLY_PAGES = {"send", "audit"}
# CSV exports: (the page that offers it, the export, its exact header line).
EXPORTS = {
    "messages": (
        "/t/{slug}/messages/",
        "/t/{slug}/messages/export.csv",
        "sid,direction,from,to,status,error_code,segments,created_at,updated_at",
    ),
    "opt-outs": ("/t/{slug}/opt-outs/", "/t/{slug}/opt-outs/export.csv", "phone,state,keyword,source,changed_at"),
    "consent": (
        "/t/{slug}/consent/",
        "/t/{slug}/consent/export.csv",
        "phone,purpose,state,method,source,captured_at,revoked_at",
    ),
    "audit": ("/t/{slug}/audit/", "/t/{slug}/audit/export.csv", "at,actor,action,target,reason,ip"),
    "verifications": (
        "/t/{slug}/verifications/",
        "/t/{slug}/verifications/export.csv",
        "sid,to,channel,status,created_at,updated_at",
    ),
}
