"""Every portal URL against every role: anonymous, admin of A, viewer of A, admin of B, support.

Pages of tenant A: members and support read (200), admin of B sees nothing (404, not 403, so
A's existence isn't confirmed), anonymous goes to the login page. Writes: only A's admins.
A new portal URL must be added to PAGES/WRITES below, or test_every_tenant_url_is_covered fails.
"""

from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tenants.audit import SYSTEM
from tenants.invitations import invitation_create
from tests.messaging.factories import BulkSendFactory, MessageTemplateFactory, TenantKeywordFactory
from tests.tenants.factories import PASSWORD, MembershipFactory, PhoneNumberFactory
from tests.voice.flow_form_data import flow_form_post
from verify.consent.admin import consent_form_create
from verify.email.suppressions import suppression_add
from verify.models import EmailMessage

CUSTOMER = "+14155550100"

ROLES = ["anonymous", "admin_a", "viewer_a", "admin_b", "support"]

# url name -> expected GET status per role (anonymous is always a login redirect)
READ_OK = {"admin_a": 200, "viewer_a": 200, "admin_b": 404, "support": 200}
ADMIN_ONLY_READ = {"admin_a": 200, "viewer_a": 403, "admin_b": 404, "support": 403}
PAGES = {
    "tenant_dashboard": ({}, READ_OK),
    "tenant_settings": ({}, READ_OK),
    "tenant_members": ({}, READ_OK),
    "tenant_audit_log": ({}, ADMIN_ONLY_READ),
    "message_list": ({}, READ_OK),
    "opt_out_list": ({}, READ_OK),
    "consent_list": ({}, READ_OK),
    "number_list": ({}, READ_OK),
    "call_list": ({}, READ_OK),
    "verification_list": ({}, READ_OK),
    # messaging admin pages (kwargs may be a factory of ctx for objects of tenant A)
    "message_detail": (lambda ctx: {"message_id": ctx["message"].id}, READ_OK),
    "message_status": (lambda ctx: {"message_id": ctx["message"].id}, READ_OK),
    "message_send": ({}, ADMIN_ONLY_READ),
    "message_send_preview": ({}, ADMIN_ONLY_READ),
    "opt_out_change": ({}, ADMIN_ONLY_READ),
    "opt_out_import": ({}, ADMIN_ONLY_READ),
    "consent_detail": (lambda ctx: {"event_id": ctx["consent"].id}, READ_OK),
    "consent_capture": ({}, ADMIN_ONLY_READ),
    "consent_import": ({}, ADMIN_ONLY_READ),
    "number_history": ({"number": CUSTOMER}, READ_OK),
    "revocation_list": ({}, READ_OK),
    "keyword_list": ({}, READ_OK),
    "sending_policy": ({}, READ_OK),
}
WRITE_OK = {"admin_a": 302, "viewer_a": 403, "admin_b": 404, "support": 403}
# Support staff's own audited actions (support_action): nobody else needs them.
SUPPORT_ONLY_WRITE = {"admin_a": 403, "viewer_a": 403, "admin_b": 404, "support": 200}
# url name -> (kwargs factory, POST data factory[, expected status per role; WRITE_OK if absent])
WRITES = {
    "message_send": (
        lambda ctx: {},
        lambda ctx: {
            "to": "+14155550188",
            "purpose": "transactional",
            "sender": "+14155550101",
            "body": "Your order shipped.",
        },
    ),
    "tenant_settings": (
        lambda ctx: {},
        lambda ctx: {
            "name": "Acme Renamed",
            "timezone": "America/Chicago",
            "keyword_replies": "twilio",
            "messaging_service_sid": "",
            "verify_service_sid": "",
            "help_text": "",
            "stop_text": "",
            "sender_email": "",
        },
    ),
    # Creating an invitation answers the page itself (200), with the one-time link in it.
    "tenant_members": (
        lambda ctx: {},
        lambda ctx: {"email": "newcomer@example.com", "role": "viewer"},
        {"admin_a": 200, "viewer_a": 403, "admin_b": 404, "support": 403},
    ),
    "tenant_member_role": (lambda ctx: {"membership_id": ctx["viewer_membership"].id}, lambda ctx: {"role": "admin"}),
    "tenant_member_remove": (lambda ctx: {"membership_id": ctx["viewer_membership"].id}, lambda ctx: {}),
    "tenant_invitation_revoke": (lambda ctx: {"invitation_id": ctx["invitation"].id}, lambda ctx: {}),
    "opt_out_change": (
        lambda ctx: {},
        lambda ctx: {"phone": CUSTOMER, "action": "opt_out", "reason": "Asked by phone"},
    ),
    "opt_out_import": (
        lambda ctx: {},
        lambda ctx: {"file": SimpleUploadedFile("o.csv", b"phone,reason\n+14155550102,old system\n")},
    ),
    "consent_capture": (
        lambda ctx: {},
        lambda ctx: {
            "phone": CUSTOMER,
            "purpose": "transactional",
            "action": "granted",
            "method": "paper",
            "captured_at": "2025-05-01T10:00",
        },
    ),
    "consent_import": (
        lambda ctx: {},
        lambda ctx: {
            "file": SimpleUploadedFile(
                "c.csv", b"phone,purpose,action,method,captured_at\n+14155550102,otp,granted,api,2025-01-01\n"
            )
        },
    ),
    "revocation_confirm": (lambda ctx: {"review_id": ctx["review"].id}, lambda ctx: {"note": ""}),
    "revocation_dismiss": (lambda ctx: {"review_id": ctx["review"].id}, lambda ctx: {"note": "Not about texts"}),
    "keyword_list": (lambda ctx: {}, lambda ctx: {"kind": "opt_out", "word": "BAJA"}),
    "keyword_remove": (lambda ctx: {"keyword_id": ctx["keyword"].id}, lambda ctx: {}),
    "sending_policy": (
        lambda ctx: {},
        lambda ctx: {
            "quiet_start": "09:00",
            "quiet_end": "20:00",
            "region_windows": "US-CA 09:00-19:00",
            "frequency_cap": "2",
            "messages_per_second": "1",
        },
    ),
    "number_unmask": (
        lambda ctx: {"number": CUSTOMER},
        lambda ctx: {"reason": "Ticket 4411: caller verification"},
        SUPPORT_ONLY_WRITE,
    ),
}


# --- Message templates and bulk sends (messaging/urls.py) ----------------------------------


def _bulk_template(ctx):

    if "bulk_template" not in ctx:
        ctx["bulk_template"] = MessageTemplateFactory(
            tenant=ctx["tenant"], name="Reminder", purpose="transactional", body="Hi {{first_name}}, see you soon."
        )
    return ctx["bulk_template"]


def _bulk(ctx, status="draft"):
    """A bulk send of tenant A in `status`; a draft holds one uploaded recipient."""

    if f"bulk_{status}" not in ctx:
        upload = {
            "body": "Hi {{first_name}}, see you soon.",
            "variables": ["first_name"],
            "recipients": [["+14155550123", ["Ana"]]],
            "errors": [],
            "error_count": 0,
            "duplicates": 0,
            "rows_read": 1,
        }
        ctx[f"bulk_{status}"] = BulkSendFactory(
            tenant=ctx["tenant"],
            name=f"Bulk {status}",
            template=_bulk_template(ctx),
            purpose="transactional",
            sender="+14155550100",
            status=status,
            total_recipients=1,
            upload=upload if status == "draft" else {},
        )
    return ctx[f"bulk_{status}"]


def _bulk_csv(ctx):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("r.csv", b"phone,first_name\n+14155550123,Ana\n", content_type="text/csv")


PAGES.update(
    {
        "template_list": ({}, READ_OK),
        "template_create": ({}, ADMIN_ONLY_READ),
        "template_edit": (lambda ctx: {"template_id": _bulk_template(ctx).id}, READ_OK),
        "bulk_list": ({}, READ_OK),
        "bulk_create": ({}, ADMIN_ONLY_READ),
        "bulk_preview": (lambda ctx: {"bulk_id": _bulk(ctx).id}, ADMIN_ONLY_READ),
        "bulk_detail": (lambda ctx: {"bulk_id": _bulk(ctx, "running").id}, READ_OK),
        "bulk_progress": (lambda ctx: {"bulk_id": _bulk(ctx, "running").id}, READ_OK),
    }
)

# CSV exports (streamed): whoever reads the list reads its export; the audit log's stays admin-only.
PAGES.update(
    {
        "message_export": ({}, READ_OK),
        "opt_out_export": ({}, READ_OK),
        "consent_export": ({}, READ_OK),
        "bulk_recipients_export": (lambda ctx: {"bulk_id": _bulk(ctx, "running").id}, READ_OK),
        "tenant_audit_export": ({}, ADMIN_ONLY_READ),
        "verification_export": ({}, READ_OK),
        "email_export": ({}, READ_OK),
        "email_suppression_export": ({}, READ_OK),
    }
)


# --- Consent forms (verify/urls.py) ---------------------------------------------------------


def _consent_form(ctx):
    if "consent_form" not in ctx:
        ctx["consent_form"] = consent_form_create(
            tenant=ctx["tenant"],
            data={
                "slug": "offers",
                "title": "Offers",
                "purpose": "marketing",
                "brand": "Acme",
                "frequency": "Up to 4 msgs/month",
                "disclosure_text": "Acme offers. Msg & data rates may apply. Reply STOP to cancel.",
                "collect_email": False,
                "is_published": True,
            },
            audit=SYSTEM,
        )
    return ctx["consent_form"]


def _consent_form_post(ctx, slug="spring"):
    return {
        "title": "Spring offers",
        "slug": slug,
        "purpose": "marketing",
        "brand": "Acme",
        "frequency": "Up to 2 msgs/month",
        "disclosure_text": "Acme spring offers. Msg & data rates may apply. Reply STOP to cancel.",
        "is_published": "on",
    }


PAGES.update(
    {
        "consent_form_list": ({}, READ_OK),
        "consent_form_create": ({}, ADMIN_ONLY_READ),
        "consent_form_edit": (lambda ctx: {"form_id": _consent_form(ctx).id}, READ_OK),
    }
)
WRITES.update(
    {
        "consent_form_create": (lambda ctx: {}, _consent_form_post),
        "consent_form_edit": (lambda ctx: {"form_id": _consent_form(ctx).id}, _consent_form_post),
    }
)

# Email (verify/urls.py): the log, one email, the suppression list (admins add and lift).
PAGES.update(
    {
        "email_list": ({}, READ_OK),
        "email_detail": (lambda ctx: {"email_id": _email(ctx).id}, READ_OK),
        "email_suppression_list": ({}, READ_OK),
    }
)
WRITES.update(
    {
        "email_suppression_list": (lambda ctx: {}, lambda ctx: {"email": "ana@example.com", "detail": "Asked us"}),
        "email_suppression_remove": (
            lambda ctx: {"entry_id": _email_suppression(ctx).id},
            lambda ctx: {"reason": "Address fixed"},
        ),
    }
)


def _email(ctx):
    return EmailMessage.objects.create(
        tenant=ctx["tenant"], to_email="ana@example.com", subject="Receipt", text="Hi", category="consent_receipt"
    )


def _email_suppression(ctx):
    return suppression_add(tenant=ctx["tenant"], email="bo@example.com", reason="bounce")[0]


WRITES.update(
    {
        "template_create": (
            lambda ctx: {},
            lambda ctx: {"name": "Welcome", "purpose": "marketing", "body": "Hi {{first_name}}"},
        ),
        "template_edit": (
            lambda ctx: {"template_id": _bulk_template(ctx).id},
            lambda ctx: {"name": "Reminder", "purpose": "transactional", "body": "Bye {{first_name}}"},
        ),
        "template_delete": (lambda ctx: {"template_id": _bulk_template(ctx).id}, lambda ctx: {}),
        "bulk_create": (
            lambda ctx: {},
            lambda ctx: {
                "name": "Spring",
                "template": _bulk_template(ctx).id,
                "purpose": "transactional",
                "sender": "+14155550100",
                "csv_file": _bulk_csv(ctx),
            },
        ),
        "bulk_launch": (lambda ctx: {"bulk_id": _bulk(ctx).id}, lambda ctx: {}),
        "bulk_pause": (lambda ctx: {"bulk_id": _bulk(ctx, "running").id}, lambda ctx: {}),
        "bulk_resume": (lambda ctx: {"bulk_id": _bulk(ctx, "paused").id}, lambda ctx: {}),
        "bulk_cancel": (lambda ctx: {"bulk_id": _bulk(ctx, "running").id}, lambda ctx: {}),
    }
)


# --- Call flows (voice/flows/urls.py) ---------------------------------------------------------


def _flow_number(ctx):
    """A voice number of tenant A with a saved flow (version 1)."""
    from voice.flows.schema import default_definition
    from voice.flows.services import call_flow_save

    if "flow_number" not in ctx:
        number = PhoneNumberFactory(tenant=ctx["tenant"], phone_number="+14155550160", voice=True)
        call_flow_save(tenant=ctx["tenant"], number=number, name="Main", definition=default_definition(), audit=SYSTEM)
        ctx["flow_number"] = number
    return ctx["flow_number"]


# --- Voice (voice/urls.py): the call log, recordings (streamed from a sandbox), placing calls --------

VOICE_SANDBOX_URLS = {"recording_audio"}
# A recording plays for members; support staff must unmask it first (their own audited action).
RECORDING_PLAY = {"admin_a": 200, "viewer_a": 200, "admin_b": 404, "support": 403}
SUPPORT_ONLY_READ = {"admin_a": 403, "viewer_a": 403, "admin_b": 404, "support": 200}


def _call(ctx):
    from tests.voice.factories import CallFactory

    if "call" not in ctx:
        ctx["call"] = CallFactory(tenant=ctx["tenant"], from_number=CUSTOMER)
    return ctx["call"]


def _recording(ctx):
    """A recording of tenant A's call, held at the sandbox when the test has one."""
    from tests.voice.factories import RecordingFactory

    if "recording" not in ctx:
        call = _call(ctx)
        sandbox = ctx.get("sandbox")
        sid = sandbox.recording_create(ctx["tenant"].account_sid, call.sid)["sid"] if sandbox else None
        ctx["recording"] = RecordingFactory(call=call, **({"sid": sid} if sid else {}))
    return ctx["recording"]


def _flow_version(ctx):
    from tests.voice.factories import flow_version_create

    if "flow_version" not in ctx:
        ctx["flow_version"] = flow_version_create(ctx["tenant"], phone_number="+14155550102")
    return ctx["flow_version"]


PAGES.update(
    {
        "call_flow_list": ({}, READ_OK),
        "call_flow_edit": (lambda ctx: {"number_id": _flow_number(ctx).id}, READ_OK),
        "call_flow_versions": (lambda ctx: {"number_id": _flow_number(ctx).id}, READ_OK),
        "call_flow_version": (lambda ctx: {"number_id": _flow_number(ctx).id, "version": 1}, READ_OK),
        "call_detail": (lambda ctx: {"call_id": _call(ctx).id}, READ_OK),
        "call_status": (lambda ctx: {"call_id": _call(ctx).id}, READ_OK),
        "call_export": ({}, READ_OK),
        "call_place": ({}, ADMIN_ONLY_READ),
        "recording_audio": (lambda ctx: {"recording_id": _recording(ctx).id}, RECORDING_PLAY),
        "recording_unmask": (lambda ctx: {"recording_id": _recording(ctx).id}, SUPPORT_ONLY_READ),
    }
)
WRITES.update(
    {
        "call_flow_edit": (lambda ctx: {"number_id": _flow_number(ctx).id}, lambda ctx: flow_form_post()),
        # The flow (saved and audited) exists before the request: only the request's audit counts.
        "call_place": (
            lambda ctx: _flow_version(ctx) and {},
            lambda ctx: {
                "to": "+442079460000",
                "from_number": _flow_version(ctx).flow.phone_number.phone_number,
                "purpose": "transactional",
                "message": "Your order is ready.",
            },
        ),
        "call_test": (
            lambda ctx: _flow_version(ctx) and {},
            lambda ctx: {"to": "+14155550188", "flow_version": _flow_version(ctx).id},
        ),
        "recording_unmask": (
            lambda ctx: {"recording_id": _recording(ctx).id},
            lambda ctx: {"reason": "Ticket 4412: customer disputes the voicemail"},
            SUPPORT_ONLY_WRITE,
        ),
    }
)


@pytest.fixture
def ctx(client, tenant, other_tenant, tenant_admin, viewer, other_admin, support_user, django_user_model):
    from tenants.models import Membership
    from tests.messaging.factories import ConsentEventFactory, MessageFactory, RevocationReviewFactory

    PhoneNumberFactory(tenant=tenant, phone_number="+14155550101")  # the send form's From must be in the inventory
    return {
        "tenant": tenant,
        "users": {"admin_a": tenant_admin, "viewer_a": viewer, "admin_b": other_admin, "support": support_user},
        "extra_user": django_user_model.objects.create_user("newcomer", password=PASSWORD),
        "viewer_membership": Membership.objects.get(user=viewer, tenant=tenant),
        "message": MessageFactory(tenant=tenant, customer=CUSTOMER),
        "consent": ConsentEventFactory(tenant=tenant, phone=CUSTOMER),
        "review": RevocationReviewFactory(tenant=tenant, phone=CUSTOMER),
        "keyword": TenantKeywordFactory(tenant=tenant, kind="help", word="AYUDA"),
        "invitation": invitation_create(
            tenant=tenant, email="pending@example.com", role="viewer", audit=SYSTEM
        ).invitation,
    }


# --- Numbers (tenants/number_urls.py): Twilio calls go to a sandbox ------------------------------

NUMBER_URLS = {"number_sync", "number_buy", "number_fix_webhooks", "number_release"}


def _number(ctx):
    """A drifted number of tenant A, at the sandbox and synced."""
    from tenants.models import PhoneNumber
    from tenants.numbers import numbers_sync

    if "number" not in ctx:
        tenant = ctx["tenant"]
        ctx["sandbox"].register_account(tenant.account_sid, tenant.auth_token.reveal())
        ctx["sandbox"].seed_number(tenant.account_sid, "+14155550150", SmsUrl="https://old.example.com/sms")
        numbers_sync(tenant=tenant)
        ctx["number"] = PhoneNumber.objects.for_tenant(tenant).get(phone_number="+14155550150")
    return ctx["number"]


@pytest.fixture(autouse=True)
def _numbers_sandbox(request):
    """Only the numbers URLs talk to Twilio: give them a sandbox (and tenant A's account)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("name") not in NUMBER_URLS:
        return
    request.getfixturevalue("sandbox_settings")
    ctx = request.getfixturevalue("ctx")
    ctx["sandbox"] = request.getfixturevalue("sandbox")
    ctx["sandbox"].register_account(ctx["tenant"].account_sid, ctx["tenant"].auth_token.reveal())


PAGES.update({"number_buy": ({}, ADMIN_ONLY_READ)})
WRITES.update(
    {
        "number_sync": (lambda ctx: {}, lambda ctx: {}),
        "number_buy": (lambda ctx: {}, lambda ctx: {"phone_number": "+14155550151"}),
        "number_fix_webhooks": (lambda ctx: {"sid": _number(ctx).sid}, lambda ctx: {}),
        "number_release": (lambda ctx: {"sid": _number(ctx).sid}, lambda ctx: {"confirm": "+14155550150"}),
    }
)


def login_as(client, ctx, role):
    if role != "anonymous":
        client.force_login(ctx["users"][role])


def tenant_url(name, tenant, **kwargs):
    from django.urls import reverse

    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_access(client, ctx, name, role):
    kwargs, expected = PAGES[name]
    kwargs = kwargs(ctx) if callable(kwargs) else kwargs
    url = tenant_url(name, ctx["tenant"], **kwargs)
    login_as(client, ctx, role)
    response = client.get(url)
    if role == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    else:
        assert response.status_code == expected[role], (name, role)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(WRITES))
def test_write_access(client, ctx, name, role):
    from tenants.models import AuditEvent

    kwargs_f, data_f, *custom = WRITES[name]
    expected = custom[0] if custom else WRITE_OK
    url = tenant_url(name, ctx["tenant"], **kwargs_f(ctx))
    login_as(client, ctx, role)
    before = AuditEvent.objects.count()
    response = client.post(url, data_f(ctx))
    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    else:
        assert response.status_code == expected[role], (name, role, response.content[:300])
    if role != "anonymous" and expected[role] < 400:
        assert AuditEvent.objects.count() > before  # every admin change (and support action) is audited
    else:
        assert AuditEvent.objects.count() == before  # and a refused one writes nothing


def test_other_tenant_root_is_404_not_403(client, ctx):
    client.force_login(ctx["users"]["admin_b"])
    assert client.get(f"/t/{ctx['tenant'].slug}/").status_code == 404
    assert client.get("/t/no-such-tenant/").status_code == 404


def test_user_in_two_tenants_sees_both(client, ctx, other_tenant):

    user = ctx["users"]["viewer_a"]
    MembershipFactory(user=user, tenant=other_tenant, role="admin")
    client.force_login(user)
    assert client.get(f"/t/{other_tenant.slug}/settings/").status_code == 200
    home = client.get("/")
    assert home.status_code == 200
    assert b"Acme" in home.content and b"Globex" in home.content


def test_support_overview_only_for_support(client, ctx):
    client.force_login(ctx["users"]["support"])
    assert client.get("/support/").status_code == 200
    client.force_login(ctx["users"]["admin_a"])
    assert client.get("/support/").status_code == 403


def test_support_sees_masked_numbers_in_template_tag(rf, ctx):
    from django.template import Context, Template

    from tenants.scoping import TenantAccess

    template = Template("{% load portal %}{% phone number %}")
    masked = template.render(Context({"number": "+14155554567", "tenant_access": TenantAccess("support")}))
    full = template.render(Context({"number": "+14155554567", "tenant_access": TenantAccess("viewer")}))
    assert masked == "+1******4567"
    assert full == "+14155554567"


def _tenant_url_names():
    names = set()

    def walk(patterns, inside):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, inside or "tenant_slug" in str(p.pattern))
            elif isinstance(p, URLPattern) and inside and p.name:
                names.add(p.name)

    walk(get_resolver().url_patterns, False)
    return names


# --- The invitation link (/invite/<token>/): no tenant in the URL, the token is the credential ------


def invite_url(token: str) -> str:
    return reverse("invitation_accept", kwargs={"token": token})


def test_invitation_link_opens_signed_out_and_names_only_its_own_tenant(client, ctx, other_tenant):
    created = invitation_create(tenant=ctx["tenant"], email="new@example.com", role="viewer", audit=SYSTEM)
    path = urlsplit(created.url).path

    response = client.get(path)

    assert response.status_code == 200
    page = response.content.decode()
    assert ctx["tenant"].name in page and other_tenant.name not in page
    assert f"/accounts/login/?next={path}" in page  # sign in and come back
    assert 'name="password1"' in page  # or create an account here


@pytest.mark.parametrize("role", ROLES)
def test_a_wrong_invitation_token_is_404_for_everyone(client, ctx, role):
    login_as(client, ctx, role)
    assert client.get(invite_url("not-a-real-token")).status_code == 404
    assert client.post(invite_url("not-a-real-token"), {"action": "accept"}).status_code == 404


def test_another_tenants_members_and_invitations_are_404_through_ones_own_tenant(client, ctx, other_tenant):
    """Admin of B names A's membership or invitation under B's own URL: not found, nothing changes."""
    from tenants.models import AuditEvent, Invitation

    client.force_login(ctx["users"]["admin_b"])
    membership, invitation = ctx["viewer_membership"], ctx["invitation"]
    before = AuditEvent.objects.count()
    for name, kwargs, data in (
        ("tenant_member_role", {"membership_id": membership.id}, {"role": "admin"}),
        ("tenant_member_remove", {"membership_id": membership.id}, {}),
        ("tenant_invitation_revoke", {"invitation_id": invitation.id}, {}),
    ):
        assert client.post(tenant_url(name, other_tenant, **kwargs), data).status_code == 404, name
    assert AuditEvent.objects.count() == before
    membership.refresh_from_db()
    assert membership.role == "viewer"
    assert Invitation.all_tenants.get(pk=invitation.pk).revoked_at is None


def test_every_tenant_url_is_covered():
    uncovered = _tenant_url_names() - set(PAGES) - set(WRITES)
    assert not uncovered, f"add these portal URLs to the isolation matrix: {sorted(uncovered)}"


@pytest.fixture(autouse=True)
def _voice_sandbox(request):
    """The recording's audio comes from Twilio: give those URLs a sandbox holding tenant A."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("name") not in VOICE_SANDBOX_URLS:
        return
    request.getfixturevalue("sandbox_settings")
    ctx = request.getfixturevalue("ctx")
    ctx["sandbox"] = request.getfixturevalue("sandbox")
    ctx["sandbox"].register_account(ctx["tenant"].account_sid, ctx["tenant"].auth_token.reveal())
