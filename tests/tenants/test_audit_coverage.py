"""The audit log's contract, action by action: every admin action (opt-out and consent changes,
imports, exports, sends, templates and bulk sends, number and credential changes, role changes,
a tenant's lifecycle) and every support-staff unmask or cross-tenant export leaves exactly the
expected AuditEvent rows — who, when, tenant, what, from which IP — through the real view. A
refused or invalid action leaves none. The log is append-only and readable by superusers and by
a tenant's own admins.

The lists are checked for completeness at the end: every tenant write of the isolation matrix
and every operator action has a case here, and every action string the code can write is named
by some test. The Django admin's audited changes (tenants, memberships, users' access,
passwords) are tested in test_admin.py.

Which roles may reach each URL at all is tests/tenants/test_isolation.py's matrix; the per-page
behaviour of each action is in the page's own tests. This file checks the audit rows only.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from messaging.number_refs import number_ref
from tenants import lifecycle
from tenants.audit import SYSTEM, AuditContext
from tenants.invitations import invitation_create
from tenants.models import AuditEvent, PhoneNumber, Tenant
from tenants.numbers import numbers_sync
from tests.messaging.factories import (
    CUSTOMER,
    ConsentEventFactory,
    MessageTemplateFactory,
    OptOutEventFactory,
    RevocationReviewFactory,
    TenantKeywordFactory,
)
from tests.tenants.factories import AuditEventFactory, MembershipFactory, PhoneNumberFactory, UserFactory
from tests.voice.factories import CallFactory, RecordingFactory, flow_version_create
from tests.voice.flow_form_data import flow_form_post
from verify.consent.admin import consent_form_create
from verify.email.suppressions import suppression_add

pytestmark = pytest.mark.django_db

IP = "203.0.113.7"
MASKED = "+1******0100"  # CUSTOMER as every audit target shows it
OUR_NUMBER = "+14155550150"  # a number of the tenant's own Twilio account
SENDER = "+14155550101"  # the From number of one-off and bulk sends


# --- The cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One expected audit row. `target` may be a function of the context; `details` is a subset."""

    action: str
    target: str | Callable[[dict], str] = ""
    tenant: str | None = "acme"
    reason: str = ""
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    user: str  # key of ctx["users"]
    url: Callable[[dict], str]
    rows: tuple[Row, ...]
    data: Callable[[dict], dict] = lambda ctx: {}
    method: str = "post"
    setup: Callable[[dict], None] | None = None
    twilio: bool = False  # the action calls Twilio: run it against the sandbox


def t(name: str, **kwargs) -> Callable[[dict], str]:
    """URL of a page of tenant acme; kwargs may be functions of the context. The function keeps
    the URL's name (`url_name`) for the completeness checks at the end of this file."""

    def url(ctx: dict) -> str:
        values = {k: v(ctx) if callable(v) else v for k, v in kwargs.items()}
        return reverse(name, kwargs={"tenant_slug": "acme", **values})

    url.url_name = name
    return url


def op(name: str, slug: str | None = "acme") -> Callable[[dict], str]:
    def url(ctx: dict) -> str:
        return reverse(f"operator:{name}", kwargs={"slug": slug} if slug else {})

    url.url_name = f"operator:{name}"
    return url


def csv_upload(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def _opted_out(ctx):
    OptOutEventFactory(tenant=ctx["tenant"], phone=CUSTOMER, source="admin", reason="earlier")


def _review(ctx):
    ctx["review"] = RevocationReviewFactory(tenant=ctx["tenant"], phone=CUSTOMER)


def _keyword(ctx):

    ctx["keyword"] = TenantKeywordFactory(tenant=ctx["tenant"], kind="help", word="AYUDA")


def _history(ctx):
    ConsentEventFactory(tenant=ctx["tenant"], phone=CUSTOMER)


def _email_suppression(ctx):
    ctx["suppression"], _ = suppression_add(tenant=ctx["tenant"], email="bo@example.com", reason="bounce")


def _support_ref(ctx) -> str:
    return number_ref(CUSTOMER, tenant=ctx["tenant"])


def _drifted_number(ctx):
    ctx["sandbox"].seed_number(ctx["tenant"].account_sid, OUR_NUMBER, SmsUrl="https://old.example.com/sms")
    numbers_sync(tenant=ctx["tenant"])  # no actor, no request: a background sync, not audited
    ctx["number"] = PhoneNumber.objects.for_tenant(ctx["tenant"]).get()


def _voice_number(ctx):
    ctx["voice_number"] = PhoneNumberFactory(tenant=ctx["tenant"], phone_number=OUR_NUMBER, voice=True)


def _flow_version(ctx):
    _history(ctx)  # the callee consented: a prerecorded call to a mobile needs it
    ctx["flow_version"] = flow_version_create(ctx["tenant"], phone_number=OUR_NUMBER)


def _recording(ctx):
    ctx["recording"] = RecordingFactory(call=CallFactory(tenant=ctx["tenant"], from_number=CUSTOMER))


def _member(ctx):
    ctx["member"] = MembershipFactory(user=ctx["newcomer"], tenant=ctx["tenant"], role="viewer")


def _invitation(ctx):
    ctx["invitation"] = invitation_create(
        tenant=ctx["tenant"], email="newcomer@example.com", role="viewer", audit=AuditContext.of(ctx["users"]["admin"])
    )


def _suspended(ctx):
    lifecycle.tenant_suspend(tenant=ctx["tenant"], audit=AuditContext.of(ctx["users"]["operator"]))


def _rotation_started(ctx):
    lifecycle.auth_token_rotation_start(tenant=ctx["tenant"], audit=AuditContext.of(ctx["users"]["operator"]))


def _erased_marker(ctx) -> str:
    """The marker that replaced the number in the tenant's consent ledger."""
    from messaging.models import ConsentEvent

    (marker,) = set(ConsentEvent.objects.for_tenant(ctx["tenant"]).values_list("phone", flat=True))
    assert marker.startswith("erased:")
    return marker


def _review_target(ctx) -> str:
    return f"revocation review #{ctx['review'].pk} ({MASKED})"


def _consent_form_data(**changes) -> dict:
    data = {
        "title": "Spring offers",
        "slug": "spring",
        "purpose": "marketing",
        "brand": "Acme",
        "frequency": "Up to 2 msgs/month",
        "disclosure_text": "Acme spring offers. Msg & data rates may apply. Reply STOP to cancel.",
        "is_published": "on",
    }
    return {**data, **changes}


def _consent_form(ctx):
    data = {**_consent_form_data(), "collect_email": False, "is_published": True}
    ctx["consent_form"] = consent_form_create(tenant=ctx["tenant"], data=data, audit=SYSTEM)


BULK_BODY = "Hi {{first_name}}, see you soon."


def _template(ctx):

    ctx["template"] = MessageTemplateFactory(
        tenant=ctx["tenant"], name="Reminder", purpose="transactional", body=BULK_BODY
    )


def _recipients_csv() -> SimpleUploadedFile:
    return csv_upload("recipients.csv", f"phone,first_name\n{CUSTOMER},Ana\n")


def _bulk(status: str) -> Callable[[dict], None]:
    """Setup: a bulk send "Spring" to CUSTOMER in `status` (draft, running or paused)."""

    def setup(ctx):
        from messaging.delivery.bulk.lifecycle import bulk_launch, bulk_pause
        from messaging.delivery.bulk.upload import bulk_csv_read, bulk_draft_create

        _template(ctx)
        upload = bulk_csv_read(content=_recipients_csv().read(), body=BULK_BODY)
        bulk = bulk_draft_create(
            tenant=ctx["tenant"],
            name="Spring",
            template=ctx["template"],
            purpose="transactional",
            sender=SENDER,
            upload=upload,
            audit=SYSTEM,
        )
        if status in ("running", "paused"):
            bulk = bulk_launch(bulk=bulk, audit=SYSTEM)
        if status == "paused":
            bulk = bulk_pause(bulk=bulk, audit=SYSTEM)
        ctx["bulk"] = bulk

    return setup


SETTINGS = {
    "name": "Acme Renamed",
    "timezone": "America/Chicago",
    "keyword_replies": "twilio",
    "messaging_service_sid": "",
    "verify_service_sid": "",
    "help_text": "",
    "stop_text": "",
    "start_text": "",
    "marketing_disclosure": "",
    "sender_email": "",
}

SENDING_POLICY = {  # the form as a new tenant's default policy shows it
    "quiet_start": "08:00",
    "quiet_end": "21:00",
    "region_windows": "",
    "frequency_cap": "3",
    "messages_per_second": "1.0",
}

CASES = {
    # Opt-out and consent changes (tenant admins)
    "opt-out add": Case(
        "admin",
        t("opt_out_change"),
        (Row("opt_out.add", MASKED, reason="Asked by phone"),),
        data=lambda ctx: {"phone": CUSTOMER, "action": "opt_out", "reason": "Asked by phone"},
    ),
    "opt-out remove": Case(
        "admin",
        t("opt_out_change"),
        (Row("opt_out.remove", MASKED, reason="Asked in store"),),
        data=lambda ctx: {"phone": CUSTOMER, "action": "opt_in", "reason": "Asked in store"},
        setup=_opted_out,
    ),
    "consent capture": Case(
        "admin",
        t("consent_capture"),
        (Row("consent.capture", MASKED, details={"purpose": "transactional", "action": "granted"}),),
        data=lambda ctx: {
            "phone": CUSTOMER,
            "purpose": "transactional",
            "action": "granted",
            "method": "paper",
            "captured_at": "2025-05-01T10:00",
        },
    ),
    "revocation confirm": Case(
        "admin",
        t("revocation_confirm", review_id=lambda ctx: ctx["review"].pk),
        (Row("revocation.confirm", _review_target, reason="Clearly a STOP"),),
        data=lambda ctx: {"note": "Clearly a STOP"},
        setup=_review,
    ),
    "revocation dismiss": Case(
        "admin",
        t("revocation_dismiss", review_id=lambda ctx: ctx["review"].pk),
        (Row("revocation.dismiss", _review_target, reason="About the store hours"),),
        data=lambda ctx: {"note": "About the store hours"},
        setup=_review,
    ),
    "keyword add": Case(
        "admin",
        t("keyword_list"),
        (Row("keyword.add", "BAJA", details={"kind": "opt_out"}),),
        data=lambda ctx: {"kind": "opt_out", "word": "BAJA"},
    ),
    "keyword remove": Case(
        "admin",
        t("keyword_remove", keyword_id=lambda ctx: ctx["keyword"].pk),
        (Row("keyword.remove", "AYUDA", details={"kind": "help"}),),
        setup=_keyword,
    ),
    "sending policy": Case(
        "admin",
        t("sending_policy"),
        (
            Row(
                "sending_policy.update",
                details={"quiet_end": ["21:00", "20:00"], "region_windows": [{}, {"US-CA": ["09:00", "19:00"]}]},
            ),
        ),
        data=lambda ctx: {**SENDING_POLICY, "quiet_end": "20:00", "region_windows": "US-CA 09:00-19:00"},
    ),
    # Sends, templates and bulk sends (tenant admins)
    "message send": Case(
        "admin",
        t("message_send"),
        (Row("message.send", MASKED, details={"purpose": "transactional"}),),
        data=lambda ctx: {"to": CUSTOMER, "purpose": "transactional", "sender": SENDER, "body": "Your order shipped."},
        setup=lambda ctx: PhoneNumberFactory(
            tenant=ctx["tenant"], phone_number=SENDER
        ),  # the From choices are the inventory
    ),
    "call flow save": Case(
        "admin",
        t("call_flow_edit", number_id=lambda ctx: ctx["voice_number"].pk),
        (Row("call_flow.save", OUR_NUMBER, details={"version": 1, "created": True, "name": "Main line"}),),
        data=lambda ctx: flow_form_post(),
        setup=_voice_number,
    ),
    "call place": Case(
        "admin",
        t("call_place"),
        (Row("call.place", MASKED),),
        data=lambda ctx: {"to": CUSTOMER, "from_number": SENDER, "purpose": "transactional", "message": "Hello"},
        setup=lambda ctx: (_history(ctx), PhoneNumberFactory(tenant=ctx["tenant"], phone_number=SENDER, voice=True)),
    ),
    "call test": Case(
        "admin",
        t("call_test"),
        (Row("call.test", MASKED),),
        data=lambda ctx: {"to": CUSTOMER, "flow_version": ctx["flow_version"].pk},
        setup=_flow_version,
    ),
    "template create": Case(
        "admin",
        t("template_create"),
        (Row("template.create", "Welcome"),),
        data=lambda ctx: {"name": "Welcome", "purpose": "marketing", "body": "Hi {{first_name}}"},
    ),
    "template update": Case(
        "admin",
        t("template_edit", template_id=lambda ctx: ctx["template"].pk),
        (Row("template.update", "Reminder", details={"fields": ["body"]}),),
        data=lambda ctx: {"name": "Reminder", "purpose": "transactional", "body": "Bye {{first_name}}"},
        setup=_template,
    ),
    "template delete": Case(
        "admin",
        t("template_delete", template_id=lambda ctx: ctx["template"].pk),
        (Row("template.delete", "Reminder"),),
        setup=_template,
    ),
    "bulk send upload": Case(
        "admin",
        t("bulk_create"),
        (Row("bulk.draft", "Spring", details={"recipients": 1, "row_errors": 0}),),
        data=lambda ctx: {
            "name": "Spring",
            "template": ctx["template"].pk,
            "purpose": "transactional",
            "sender": SENDER,
            "csv_file": _recipients_csv(),
        },
        setup=_template,
    ),
    "bulk send launch": Case(
        "admin",
        t("bulk_launch", bulk_id=lambda ctx: ctx["bulk"].pk),
        (Row("bulk.launch", "Spring", details={"recipients": 1, "purpose": "transactional"}),),
        setup=_bulk("draft"),
    ),
    "bulk send pause": Case(
        "admin",
        t("bulk_pause", bulk_id=lambda ctx: ctx["bulk"].pk),
        (Row("bulk.pause", "Spring"),),
        setup=_bulk("running"),
    ),
    "bulk send resume": Case(
        "admin",
        t("bulk_resume", bulk_id=lambda ctx: ctx["bulk"].pk),
        (Row("bulk.resume", "Spring"),),
        setup=_bulk("paused"),
    ),
    "bulk send cancel": Case(
        "admin",
        t("bulk_cancel", bulk_id=lambda ctx: ctx["bulk"].pk),
        (Row("bulk.cancel", "Spring", details={"never_queued": 0}),),
        setup=_bulk("running"),
    ),
    # Imports (a real import; a dry run is in test_invalid_or_refused_actions_write_nothing)
    "opt-out import": Case(
        "admin",
        t("opt_out_import"),
        (Row("opt_out.import", "optouts.csv", details={"rows": 1, "imported": 1, "skipped": 0}),),
        data=lambda ctx: {"file": csv_upload("optouts.csv", f"phone,reason\n{CUSTOMER},old system\n")},
    ),
    "consent import": Case(
        "admin",
        t("consent_import"),
        (Row("consent.import", "consents.csv", details={"rows": 1, "imported": 1, "skipped": 0}),),
        data=lambda ctx: {
            "file": csv_upload(
                "consents.csv", f"phone,purpose,action,method,captured_at\n{CUSTOMER},otp,granted,api,2025-01-01\n"
            )
        },
    ),
    # Exports: the per-number consent proof (members and support staff), the support overview
    "consent proof CSV (admin)": Case(
        "admin",
        t("number_history", number=CUSTOMER),
        (Row("export.number_history", MASKED, details={"format": "csv", "rows": 1, "masked": False}),),
        data=lambda ctx: {"format": "csv"},
        method="get",
        setup=_history,
    ),
    "consent proof JSON (admin)": Case(
        "admin",
        t("number_history", number=CUSTOMER),
        (Row("export.number_history", MASKED, details={"format": "json", "rows": 1, "masked": False}),),
        data=lambda ctx: {"format": "json"},
        method="get",
        setup=_history,
    ),
    "consent proof CSV (support, another tenant's data)": Case(
        "support",
        t("number_history", number=_support_ref),
        (Row("export.number_history", MASKED, details={"format": "csv", "rows": 1, "masked": True}),),
        data=lambda ctx: {"format": "csv"},
        method="get",
        setup=_history,
    ),
    "support overview CSV (cross-tenant)": Case(
        "support",
        lambda ctx: reverse("support_overview"),
        (Row("export.support_overview", "all tenants", tenant=None, details={"format": "csv", "rows": 2}),),
        data=lambda ctx: {"format": "csv"},
        method="get",
    ),
    # The list pages' streamed CSV exports, with the filters used (numbers in them masked)
    "messages CSV (admin)": Case(
        "admin",
        t("message_export"),
        (
            Row(
                "export.messages", "messages", details={"format": "csv", "masked": False, "filters": {"status": "sent"}}
            ),
        ),
        data=lambda ctx: {"status": "sent"},
        method="get",
    ),
    "opt-outs CSV (support)": Case(
        "support",
        t("opt_out_export"),
        (Row("export.opt_outs", "opt-outs", details={"format": "csv", "masked": True, "filters": {"q": MASKED}}),),
        data=lambda ctx: {"q": CUSTOMER},
        method="get",
        setup=_opted_out,
    ),
    "consent CSV (admin)": Case(
        "admin",
        t("consent_export"),
        (Row("export.consent", "consent", details={"format": "csv", "masked": False, "filters": {}}),),
        method="get",
        setup=_history,
    ),
    "bulk recipients CSV (admin)": Case(
        "admin",
        t("bulk_recipients_export", bulk_id=lambda ctx: ctx["bulk"].pk),
        (
            Row(
                "export.bulk_recipients", lambda ctx: f"bulk send #{ctx['bulk'].pk} (Spring)", details={"format": "csv"}
            ),
        ),
        method="get",
        setup=_bulk("running"),
    ),
    "audit log CSV (admin)": Case(
        "admin",
        t("tenant_audit_export"),
        (Row("export.audit", "audit log", details={"format": "csv", "filters": {"action": "export."}}),),
        data=lambda ctx: {"action": "export."},
        method="get",
    ),
    # Support staff unmask, with a written reason
    "support unmask": Case(
        "support",
        t("number_unmask", number=_support_ref),
        (Row("support.unmask", MASKED, reason="Ticket 4411: caller verification"),),
        data=lambda ctx: {"reason": "Ticket 4411: caller verification"},
    ),
    "support unmask recording": Case(
        "support",
        t("recording_unmask", recording_id=lambda ctx: ctx["recording"].pk),
        (
            Row(
                "support.unmask_recording",
                lambda ctx: f"recording {ctx['recording'].sid} (call with {MASKED})",
                reason="Ticket 812: customer disputes the voicemail",
            ),
        ),
        data=lambda ctx: {"reason": "Ticket 812: customer disputes the voicemail"},
        setup=_recording,
    ),
    # Numbers (Twilio sandbox)
    "number sync": Case(
        "admin",
        t("number_sync"),
        (Row("number.sync", details={"total": 1, "created": 1}),),
        setup=lambda ctx: ctx["sandbox"].seed_number(ctx["tenant"].account_sid, OUR_NUMBER),
        twilio=True,
    ),
    "number buy": Case(
        "admin",
        t("number_buy"),
        (Row("number.buy", lambda ctx: PhoneNumber.objects.for_tenant(ctx["tenant"]).get().sid),),
        data=lambda ctx: {"phone_number": OUR_NUMBER},
        twilio=True,
    ),
    "number fix webhooks": Case(
        "admin",
        t("number_fix_webhooks", sid=lambda ctx: ctx["number"].sid),
        (Row("number.fix_webhooks", lambda ctx: ctx["number"].sid),),
        setup=_drifted_number,
        twilio=True,
    ),
    "number release": Case(
        "admin",
        t("number_release", sid=lambda ctx: ctx["number"].sid),
        (Row("number.release", lambda ctx: ctx["number"].sid, details={"phone_number": OUR_NUMBER}),),
        data=lambda ctx: {"confirm": OUR_NUMBER},
        setup=_drifted_number,
        twilio=True,
    ),
    # Tenant settings and roles (tenant admins)
    "tenant settings": Case(
        "admin",
        t("tenant_settings"),
        (Row("tenant.settings_update", details={"fields": ["name", "timezone"]}),),
        data=lambda ctx: SETTINGS,
    ),
    "member invited": Case(
        "admin",
        t("tenant_members"),
        (Row("invitation.created", "newcomer@example.com", details={"role": "viewer"}),),
        data=lambda ctx: {"email": "newcomer@example.com", "role": "viewer"},
    ),
    "invitation revoked": Case(
        "admin",
        t("tenant_invitation_revoke", invitation_id=lambda ctx: ctx["invitation"].invitation.pk),
        (Row("invitation.revoked", "newcomer@example.com", details={"role": "viewer", "replaced": False}),),
        setup=_invitation,
    ),
    "invitation accepted (member added)": Case(
        "newcomer",
        lambda ctx: urlsplit(ctx["invitation"].url).path,  # the link, which names no tenant
        (
            Row("membership.added", "newcomer", details={"role": "viewer", "via": "invitation"}),
            Row("invitation.accepted", "newcomer", details={"role": "viewer", "email": "newcomer@example.com"}),
        ),
        data=lambda ctx: {"action": "accept"},
        setup=_invitation,
    ),
    "member role changed": Case(
        "admin",
        t("tenant_member_role", membership_id=lambda ctx: ctx["member"].pk),
        (Row("membership.changed", "newcomer", details={"role": "admin"}),),
        data=lambda ctx: {"role": "admin"},
        setup=_member,
    ),
    "member removed": Case(
        "admin",
        t("tenant_member_remove", membership_id=lambda ctx: ctx["member"].pk),
        (Row("membership.removed", "newcomer", details={"role": "viewer"}),),
        setup=_member,
    ),
    # A tenant's lifecycle, credentials, retention and erasure (platform operators, Twilio sandbox)
    "tenant create": Case(
        "operator",
        op("tenant_create", slug=None),
        (
            Row("tenant.create", "initech", tenant="initech"),
            Row("subaccount.create", lambda ctx: Tenant.objects.get(slug="initech").account_sid, tenant="initech"),
        ),
        data=lambda ctx: {"name": "Initech", "slug": "initech", "timezone": "America/Chicago"},
        twilio=True,
    ),
    "tenant suspend": Case(
        "operator",
        op("tenant_suspend"),
        (Row("tenant.suspend", lambda ctx: ctx["tenant"].account_sid, reason="unpaid invoice"),),
        data=lambda ctx: {"reason": "unpaid invoice"},
        twilio=True,
    ),
    "tenant reactivate": Case(
        "operator",
        op("tenant_reactivate"),
        (Row("tenant.reactivate", lambda ctx: ctx["tenant"].account_sid, details={"to": "active"}),),
        setup=_suspended,
        twilio=True,
    ),
    "tenant close": Case(
        "operator",
        op("tenant_close"),
        (Row("tenant.close", lambda ctx: ctx["tenant"].account_sid, reason="contract ended"),),
        data=lambda ctx: {"confirm_slug": "acme", "reason": "contract ended"},
        twilio=True,
    ),
    "API key rotate": Case(
        "operator",
        op("api_key_rotate"),
        (Row("credentials.api_key_rotated", lambda ctx: Tenant.objects.get(slug="acme").api_key_sid),),
        twilio=True,
    ),
    "auth token start": Case(
        "operator",
        op("auth_token_start"),
        (Row("credentials.auth_token_secondary_created", lambda ctx: ctx["tenant"].account_sid),),
        twilio=True,
    ),
    "auth token promote": Case(
        "operator",
        op("auth_token_promote"),
        (Row("credentials.auth_token_promoted", lambda ctx: ctx["tenant"].account_sid),),
        setup=_rotation_started,
        twilio=True,
    ),
    "auth token cancel": Case(
        "operator",
        op("auth_token_cancel"),
        (Row("credentials.auth_token_rotation_cancelled", lambda ctx: ctx["tenant"].account_sid),),
        setup=_rotation_started,
        twilio=True,
    ),
    # Email (verify/email/): the suppression list's admin changes and the two CSV exports
    "email suppression added (admin)": Case(
        "admin",
        t("email_suppression_list"),
        (
            Row(
                "email.suppression_add",
                "a***@e***.com",  # addresses are masked in the audit trail, like numbers
                reason="Asked by phone",
                details={"asm_group_id": None, "reason": "manual"},
            ),
        ),
        data=lambda ctx: {"email": "Ana@Example.com", "detail": "Asked by phone"},
    ),
    "email suppression lifted (admin)": Case(
        "admin",
        t("email_suppression_remove", entry_id=lambda ctx: ctx["suppression"].pk),
        (Row("email.suppression_remove", "b***@e***.com", reason="Wrong address fixed", details={"reason": "bounce"}),),
        data=lambda ctx: {"reason": "Wrong address fixed"},
        setup=_email_suppression,
    ),
    "email log CSV (support)": Case(
        "support",
        t("email_export"),
        (
            Row(
                "export.emails", "emails", details={"format": "csv", "masked": True, "filters": {"to": "a***@e***.com"}}
            ),
        ),
        data=lambda ctx: {"to": "ana@example.com"},
        method="get",
    ),
    "email suppressions CSV (admin)": Case(
        "admin",
        t("email_suppression_export"),
        (Row("export.email_suppressions", "email-suppressions", details={"format": "csv", "masked": False}),),
        method="get",
        setup=_email_suppression,
    ),
    # Verify (verify/): consent forms (a changed disclosure is a new version) and the log's CSV
    "consent form published (admin)": Case(
        "admin",
        t("consent_form_create"),
        (Row("consent_form.create", "spring", details={"version": 1}),),
        data=lambda ctx: _consent_form_data(),
    ),
    "consent form edited into a new version (admin)": Case(
        "admin",
        t("consent_form_edit", form_id=lambda ctx: ctx["consent_form"].pk),
        (
            Row(
                "consent_form.update",
                "spring",
                details={"version": 2, "new_version": True, "changed": ["disclosure_text"]},
            ),
        ),
        data=lambda ctx: _consent_form_data(disclosure_text="Acme spring offers, weekly. Reply STOP to cancel."),
        setup=_consent_form,
    ),
    "verifications CSV (support)": Case(
        "support",
        t("verification_export"),
        (
            Row(
                "export.verifications",
                "verifications",
                details={"format": "csv", "masked": True, "filters": {"phone": MASKED}},
            ),
        ),
        data=lambda ctx: {"phone": CUSTOMER},
        method="get",
    ),
    "retention update": Case(
        "operator",
        op("retention_update"),
        (Row("retention.settings_update", "acme", details={"after": {"retention_days": 30, "legal_hold": True}}),),
        data=lambda ctx: {"retention_days": 30, "legal_hold": "on"},
    ),
    "GDPR erase": Case(
        "operator",
        op("number_erase"),
        (Row("gdpr.erase", _erased_marker, reason="Art. 17 request #88"),),
        data=lambda ctx: {"phone": CUSTOMER, "phone_again": CUSTOMER, "reason": "Art. 17 request #88"},
        setup=_history,
    ),
}


# --- Fixtures --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_key_verification(monkeypatch):
    monkeypatch.setattr(lifecycle, "KEY_VERIFY_DELAY", 0)


@pytest.fixture
def live(tenant, sandbox, sandbox_settings):
    """`tenant` as a subaccount of the sandbox's parent account (as in test_numbers.py)."""
    sandbox.register_account(tenant.account_sid, tenant.auth_token.reveal())
    sandbox_settings.PUBLIC_BASE_URL = "https://portal.example.com"
    return tenant


@pytest.fixture
def ctx(tenant, other_tenant, tenant_admin, support_user, django_user_model):
    newcomer = UserFactory(username="newcomer")
    return {
        "tenant": tenant,
        "users": {
            "admin": tenant_admin,
            "support": support_user,
            "operator": UserFactory(username="olga-operator", superuser=True),
            "newcomer": newcomer,
        },
        "newcomer": newcomer,
    }


def new_events(since: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=since).order_by("id"))


def last_id() -> int:
    return AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0


# --- Every listed action is audited ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_action_is_audited(request, client, ctx, name):
    case = CASES[name]
    if case.twilio:
        request.getfixturevalue("live")
        ctx["sandbox"] = request.getfixturevalue("sandbox")
    if case.setup:
        case.setup(ctx)
    user = ctx["users"][case.user]
    client.force_login(user)
    url, data = case.url(ctx), case.data(ctx)
    since, started = last_id(), timezone.now()

    response = getattr(client, case.method)(url, data, REMOTE_ADDR=IP)

    finished = timezone.now()
    assert response.status_code in (200, 302), response.content[:500]
    if case.method == "post" and response.status_code == 302:
        # The action succeeded (no error message on the way back).
        assert not [m for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    events = new_events(since)
    assert [e.action for e in events] == [row.action for row in case.rows]
    for event, row in zip(events, case.rows, strict=True):
        assert (event.actor, event.actor_label) == (user, user.username)  # who
        assert started <= event.created_at <= finished  # when
        expected_tenant = Tenant.objects.get(slug=row.tenant) if row.tenant else None
        assert event.tenant == expected_tenant  # tenant
        target = row.target(ctx) if callable(row.target) else row.target
        assert event.target == target and event.reason == row.reason  # what
        for key, value in row.details.items():
            if isinstance(value, dict):
                assert value.items() <= event.details[key].items(), (key, event.details)
            else:
                assert event.details[key] == value, (key, event.details)
        assert event.ip_address == IP  # from which IP
        # A customer's number is never stored in clear in the audit trail.
        assert CUSTOMER not in json.dumps([event.target, event.reason, event.details])


def test_support_overview_csv_is_the_table_without_numbers_or_secrets(client, ctx, other_tenant):
    from messaging.models import Message

    Message.objects.create(
        tenant=ctx["tenant"], direction="outbound", from_number="+14155550199", to_number=CUSTOMER, status="failed"
    )
    client.force_login(ctx["users"]["support"])
    response = client.get(reverse("support_overview"), {"format": "csv", "q": "acme"})
    assert response["Content-Type"].startswith("text/csv") and "attachment" in response["Content-Disposition"]
    body = response.content.decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(r["tenant"], r["failure_rate_24h"], r["failed_24h"], r["finished_24h"]) for r in rows] == [
        ("acme", "1.0000", "1", "1")
    ]
    assert CUSTOMER not in body and ctx["tenant"].auth_token.reveal() not in body
    event = AuditEvent.objects.get(action="export.support_overview")
    assert event.tenant is None and event.details == {"format": "csv", "rows": 1, "q": "acme"}
    # Tenant members never reach it.
    client.force_login(ctx["users"]["admin"])
    assert client.get(reverse("support_overview"), {"format": "csv"}).status_code == 403
    assert AuditEvent.objects.filter(action="export.support_overview").count() == 1


def test_role_changes_from_the_command_line_are_audited(ctx):
    """create_portal_user: memberships and the support/superuser grants. No request: no IP, and
    the actor is recorded as "system" (whoever ran the command on the server)."""
    since = last_id()
    call_command(
        "create_portal_user", "newcomer", "--tenant", "acme", "--role", "admin", "--support", "--superuser",
        stdout=io.StringIO(),
    )  # fmt: skip
    events = new_events(since)
    assert [(e.action, e.tenant and e.tenant.slug, e.target) for e in events] == [
        ("membership.added", "acme", "newcomer"),
        ("support.granted", None, "newcomer"),
        ("superuser.granted", None, "newcomer"),
    ]
    assert all(e.actor is None and e.actor_label == "system" and e.ip_address is None for e in events)
    # Granting again changes nothing and records nothing.
    since = last_id()
    call_command("create_portal_user", "newcomer", "--superuser", stdout=io.StringIO())
    assert new_events(since) == []


# --- Invalid or refused actions write nothing ------------------------------------------------------


INVALID = {
    "opt-out change without a reason": Case(
        "admin",
        t("opt_out_change"),
        (),
        data=lambda ctx: {"phone": CUSTOMER, "action": "opt_out", "reason": ""},
    ),
    "consent import dry run": Case(
        "admin",
        t("consent_import"),
        (),
        data=lambda ctx: {
            "dry_run": "on",
            "file": csv_upload(
                "c.csv", f"phone,purpose,action,method,captured_at\n{CUSTOMER},otp,granted,api,2025-01-01\n"
            ),
        },
    ),
    "call flow with a dangling key": Case(
        "admin",
        t("call_flow_edit", number_id=lambda ctx: ctx["voice_number"].pk),
        (),
        data=lambda ctx: flow_form_post(options=[{"digit": "1", "type": ""}, {"digit": "9", "type": "opt_out"}]),
        setup=_voice_number,
    ),
    "invitation to an address that is not one": Case(
        "admin", t("tenant_members"), (), data=lambda ctx: {"email": "nobody", "role": "admin"}
    ),
    "unmask with a too short reason": Case(
        "support", t("number_unmask", number=_support_ref), (), data=lambda ctx: {"reason": "curious"}
    ),
    "dismissal without a note": Case(
        "admin",
        t("revocation_dismiss", review_id=lambda ctx: ctx["review"].pk),
        (),
        data=lambda ctx: {"note": ""},
        setup=_review,
    ),
    "release without typing the number": Case(
        "admin",
        t("number_release", sid=lambda ctx: ctx["number"].sid),
        (),
        data=lambda ctx: {"confirm": "+14155550000"},
        setup=_drifted_number,
        twilio=True,
    ),
    "sending policy window that never opens": Case(
        "admin", t("sending_policy"), (), data=lambda ctx: {**SENDING_POLICY, "quiet_start": "22:00"}
    ),
    "sending policy saved unchanged": Case("admin", t("sending_policy"), (), data=lambda ctx: SENDING_POLICY),
    "email suppression of a non-address": Case(
        "admin", t("email_suppression_list"), (), data=lambda ctx: {"email": "not-an-address", "detail": "x"}
    ),
    "email suppression lifted without a reason": Case(
        "admin",
        t("email_suppression_remove", entry_id=lambda ctx: ctx["suppression"].pk),
        (),
        data=lambda ctx: {"reason": ""},
        setup=_email_suppression,
    ),
    "close without typing the slug": Case(
        "operator", op("tenant_close"), (), data=lambda ctx: {"confirm_slug": "acme-typo"}, twilio=True
    ),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_or_refused_actions_write_nothing(request, client, ctx, name):
    """A few representative cases; refused roles (403/404) are test_isolation.py's matrix."""
    case = INVALID[name]
    if case.twilio:
        request.getfixturevalue("live")
        ctx["sandbox"] = request.getfixturevalue("sandbox")
    if case.setup:
        case.setup(ctx)
    client.force_login(ctx["users"][case.user])
    since = last_id()
    response = client.post(case.url(ctx), case.data(ctx), REMOTE_ADDR=IP)
    assert response.status_code in (200, 302)  # the form again, or back with an error message
    assert new_events(since) == []


@pytest.mark.parametrize(
    "name, failed",
    [
        ("tenant suspend", "tenant.suspend.failed"),
        ("tenant reactivate", "tenant.reactivate.failed"),
        ("tenant close", "tenant.close.failed"),
    ],
)
def test_lifecycle_change_twilio_refuses_is_audited_as_failed(request, client, ctx, name, failed):
    """The same operator pages when Twilio refuses the status change: one `<action>.failed` row
    with Twilio's code, and the tenant's status stays as it was."""
    from sandbox.state import Fault

    case = CASES[name]
    request.getfixturevalue("live")
    ctx["sandbox"] = request.getfixturevalue("sandbox")
    if case.setup:
        case.setup(ctx)
    account = f"/Accounts/{ctx['tenant'].account_sid}.json"
    ctx["sandbox"].add_fault(Fault(path_contains=account, method="POST", status=401, code=20003))
    operator = ctx["users"]["operator"]
    client.force_login(operator)
    status, since = Tenant.objects.get(slug="acme").status, last_id()

    response = client.post(case.url(ctx), case.data(ctx), REMOTE_ADDR=IP)

    assert response.status_code == 302
    events = new_events(since)
    assert [(e.action, e.actor, e.ip_address, e.details.get("code")) for e in events] == [(failed, operator, IP, 20003)]
    assert Tenant.objects.get(slug="acme").status == status


# --- Append-only, and who reads the log ------------------------------------------------------------


def test_audit_events_cannot_be_changed_or_deleted(ctx):
    """Through the ORM's instances (the Django admin's refusals are in test_admin.py). Queryset
    `.update()`/`.delete()` bypass this on purpose: GDPR erasure scrubs a number out of audit
    rows (tenants/retention.py), the bulk benchmark drops its own throwaway tenant."""
    event = AuditEventFactory(tenant=ctx["tenant"], action="opt_out.add", target=MASKED, ip_address=IP)
    event.target = "tampered"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).target == MASKED


def test_audit_log_shows_superusers_any_tenant_and_admins_only_their_own(client, ctx, other_tenant, other_admin):
    AuditEventFactory(
        tenant=ctx["tenant"], action="keyword.add", target="ACME-WORD", reason="acme reason", ip_address=IP
    )
    AuditEventFactory(tenant=other_tenant, action="keyword.add", target="GLOBEX-WORD")
    AuditEventFactory(tenant=None, action="support.granted", target="PLATFORM-WIDE")

    def page(user, slug):
        client.force_login(user)
        return client.get(reverse("tenant_audit_log", kwargs={"tenant_slug": slug}))

    acme = page(ctx["users"]["admin"], "acme")
    html = acme.content.decode()
    assert acme.status_code == 200 and "ACME-WORD" in html and "acme reason" in html and IP in html
    assert "GLOBEX-WORD" not in html and "PLATFORM-WIDE" not in html
    globex = page(other_admin, "globex").content.decode()
    assert "GLOBEX-WORD" in globex and "ACME-WORD" not in globex

    operator = ctx["users"]["operator"]
    for slug, own, foreign in (("acme", "ACME-WORD", "GLOBEX-WORD"), ("globex", "GLOBEX-WORD", "ACME-WORD")):
        response = page(operator, slug)
        assert response.status_code == 200
        assert own in response.content.decode() and foreign not in response.content.decode()
    # The platform-wide events (no tenant: support and superuser grants, cross-tenant exports)
    # are the superusers' alone, in the Django admin (access rules: test_admin.py).
    assert b"PLATFORM-WIDE" in client.get("/admin/tenants/auditevent/").content


# --- The cases above are complete -------------------------------------------------------------------

#: Tenant writes of tests/tenants/test_isolation.py's WRITES matrix with no entry in CASES, each
#: with the reason. Empty: every one has a case. (A test elsewhere that only checks that some
#: row was written is not a reason: the matrix itself already checks that much.)
EXEMPT: dict[str, str] = {}

#: Operator pages that only read.
OPERATOR_READS = {"operator:tenant_list", "operator:tenant_detail"}


def _case_url_names() -> set[str]:
    return {name for case in CASES.values() if (name := getattr(case.url, "url_name", None))}


def test_every_tenant_write_has_an_audit_case():
    from tests.tenants.test_isolation import WRITES

    covered = _case_url_names()
    missing = set(WRITES) - covered - set(EXEMPT)
    assert not missing, f"add a case to CASES (or a reason to EXEMPT) for these tenant writes: {sorted(missing)}"
    assert not set(EXEMPT) - set(WRITES), "EXEMPT lists URLs that are no longer tenant writes"
    assert not set(EXEMPT) & covered, "EXEMPT lists URLs that now have a case"


def test_every_operator_action_has_an_audit_case():
    from tenants.operator_urls import urlpatterns

    actions = {f"operator:{pattern.name}" for pattern in urlpatterns} - OPERATOR_READS
    missing = actions - _case_url_names()
    assert not missing, f"add a case to CASES for these operator actions: {sorted(missing)}"


# Every action the code can write must be named in some test under tests/ (a source scan: the
# test is expected to assert the row). The scan reads each `audit_record(action=...)`: a string,
# or a choice between strings, counts as written; a parameter of the enclosing function counts
# as every string the callers pass for it. Anything else is computed, and listed here with every
# action it can produce, keyed by file and function (a new computed call fails until listed).
APP_PACKAGES = ("commsportal", "tenants", "messaging", "voice", "verify")
COMPUTED_ACTIONS = {
    "tenants/admin.py:TenantAdmin.save_formset": {"membership.added", "membership.changed", "membership.removed"},
    "tenants/admin.py:PortalUserAdmin.save_model": {
        "superuser.granted",
        "superuser.revoked",
        "staff.granted",
        "staff.revoked",
        "user.activated",
        "user.deactivated",
    },
    "tenants/services.py:membership_set": {"membership.added", "membership.changed"},
    "tenants/admin.py:_audit_set_change": {
        "group.joined",
        "group.left",
        "permission.granted",
        "permission.revoked",
        "group.permission_granted",
        "group.permission_revoked",
    },
    "tenants/lifecycle.py:_status_change": {
        "tenant.suspend",
        "tenant.reactivate",
        "tenant.close",
        "tenant.suspend.failed",
        "tenant.reactivate.failed",
        "tenant.close.failed",
    },
}
#: Actions no test names, each with the reason. Empty: all are named.
ACTION_EXEMPT: dict[str, str] = {}
ROOT = Path(__file__).resolve().parents[2]


def _strings(node) -> set[str] | None:
    """The strings `node` can evaluate to, when it is a string or a conditional between them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _strings(node.body), _strings(node.orelse)
        return body | orelse if body is not None and orelse is not None else None
    return None


def _action_argument(call: ast.Call, function: ast.FunctionDef | None, name: str):
    """The argument given for parameter `name` in `call` (by keyword or, if `function` says where,
    by position)."""
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    positional = [a.arg for a in (function.args.posonlyargs + function.args.args)] if function else ["action"]
    if name in positional and positional.index(name) < len(call.args):
        return call.args[positional.index(name)]
    return None


def audited_actions() -> tuple[set[str], set[str]]:
    """(every action the app code can write, the computed call sites found)."""
    calls = []  # (site, enclosing function, call node) of each audit_record call
    forwarders = {}  # function name -> (its node, the parameter it passes on as the action)
    all_calls = []  # (site, callee name, call node) of every call: what callers pass to forwarders
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            relative = path.relative_to(ROOT).as_posix()

            def visit(node, scope, function, relative=relative):
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                        inner = child if not isinstance(child, ast.ClassDef) else function
                        visit(child, [*scope, child.name], inner)
                        continue
                    if isinstance(child, ast.Call):
                        site = f"{relative}:{'.'.join(scope)}"
                        callee = getattr(child.func, "id", None) or getattr(child.func, "attr", None)
                        all_calls.append((site, callee, child))
                        if callee == "audit_record":
                            calls.append((site, function, child))
                    visit(child, scope, function)

            visit(ast.parse(path.read_text()), [], None)

    actions, computed = set(), set()
    for site, function, call in calls:
        argument = _action_argument(call, None, "action")
        strings = _strings(argument)
        params = {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)} if function else set()
        if strings is not None:
            actions |= strings
        elif isinstance(argument, ast.Name) and argument.id in params:
            forwarders[function.name] = (function, argument.id)
        else:
            computed.add(site)
            actions |= COMPUTED_ACTIONS.get(site, set())
    for site, callee, call in all_calls:
        if callee in forwarders:
            function, param = forwarders[callee]
            strings = _strings(_action_argument(call, function, param))
            assert strings is not None, f"{site} passes a computed action to {callee}(): list the site"
            actions |= strings
    return actions, computed


def _assigned_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.AnnAssign):
        return getattr(node.target, "id", None)
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        return getattr(node.targets[0], "id", None)
    return None


def _test_sources() -> str:
    """Every test file's source; this one without the lists above (naming an action there
    doesn't test it)."""
    sources = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        text = path.read_text()
        if path.resolve() == Path(__file__).resolve():
            tree = ast.parse(text)
            tree.body = [
                node for node in tree.body if _assigned_name(node) not in ("COMPUTED_ACTIONS", "ACTION_EXEMPT")
            ]
            text = ast.unparse(tree)
        sources.append(text)
    return "\n".join(sources)


def test_every_audit_action_in_the_code_is_named_by_a_test():
    actions, computed = audited_actions()
    assert computed == set(COMPUTED_ACTIONS), (
        f"computed audit actions at {sorted(computed - set(COMPUTED_ACTIONS))}: list them in COMPUTED_ACTIONS; "
        f"no longer computed: {sorted(set(COMPUTED_ACTIONS) - computed)}"
    )
    assert {"support.granted", "bulk.pause", "credentials.auth_token_rotation.failed"} <= actions  # the scan works
    sources = _test_sources()
    untested = {a for a in actions if not re.search(rf"""["']{re.escape(a)}["']""", sources)} - set(ACTION_EXEMPT)
    assert not untested, (
        f"no test names these audit actions (test them, or say why in ACTION_EXEMPT): {sorted(untested)}"
    )
    assert not set(ACTION_EXEMPT) - actions, "ACTION_EXEMPT lists actions the code no longer writes"
