"""`python manage.py demo`: the whole portal on one machine with nothing else installed.

Migrates the embedded SQLite database, loads demo tenants and users (idempotent), starts the
local Twilio sandbox (unless TWILIO_API_BASE_URL points elsewhere; it stands in for SendGrid
too unless SENDGRID_API_KEY is set), a Celery worker with beat
on the embedded filesystem broker, and the web server on http://127.0.0.1:8000 — so retries,
scheduled sends and periodic jobs behave as in production. Ctrl-C stops everything.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

import requests
from celery import current_app
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from sandbox.server import TwilioSandbox
from sandbox.state import DEV_PARENT_ACCOUNT_SID, DEV_PARENT_AUTH_TOKEN
from tenants.audit import SYSTEM
from tenants.models import PhoneNumber, Tenant
from tenants.services import membership_set, portal_user_upsert, superuser_grant, support_grant, tenant_upsert
from verify.email.sending import email_send
from verify.models import EmailMessage
from verify.second_factor.services import totp_device_provision
from voice.flows.schema import ACTIONS
from voice.flows.services import call_flow_save, flow_for_number

DEMO_PASSWORD = "commsportal-demo"
DEMO_TENANTS = [
    {
        "slug": "acme",
        "name": "Acme Health",
        "timezone": "America/New_York",
        "numbers": ["+14155550101", "+14155550102"],
    },
    # Globex's number lacks the call status callback: the numbers page shows drift and its fix.
    {
        "slug": "globex",
        "name": "Globex Retail",
        "timezone": "America/Chicago",
        "numbers": ["+13125550111"],
        "call_status_callback": False,
    },
]
DEMO_USERS = [
    ("acme-admin", [("acme", "admin")], False, False),
    ("acme-viewer", [("acme", "viewer")], False, False),
    ("globex-admin", [("globex", "admin")], False, False),
    ("support", [], True, False),
    ("operator", [], False, True),
]
# The call flow on Acme's first number (the flow engine's document, voice/flows/schema.py): call it
# from the sandbox's virtual phone and walk the menu. Seeded once the numbers are synced.
DEMO_CALLER = "+14155550199"
DEMO_FLOWS = {
    ("acme", "+14155550101"): {
        "name": "Acme front desk",
        "definition": {
            "schema": 1,
            "voice": "Polly.Joanna",
            "language": "en-US",
            "greeting": {"kind": "say", "text": "Thank you for calling Acme Health."},
            "menu": {
                "prompt": {
                    "kind": "say",
                    "text": "To speak to the front desk, press 1. To leave a message, press 2. "
                    "For our opening hours, press 3. To stop our calls and texts, press 9.",
                },
                "timeout": 5,
                "attempts": 2,
                "options": [
                    {"digit": "1", "action": {"type": "forward", "target": "+14155550100", "caller_id": "number"}},
                    {
                        "digit": "2",
                        "action": {
                            "type": "voicemail",
                            "prompt": "Please leave your name, number and message after the tone.",
                            "max_length": 120,
                        },
                    },
                    {
                        "digit": "3",
                        "action": {
                            "type": "message",
                            "audio": {"kind": "say", "text": "We are open Monday to Friday, 8 AM to 6 PM."},
                            "then": "menu",
                        },
                    },
                    {"digit": "9", "action": {"type": "opt_out"}},
                ],
                "no_input": {"type": "voicemail"},
            },
            "hours": {"enabled": False, "days": [0, 1, 2, 3, 4], "open": "08:00", "close": "18:00", "holidays": True},
        },
    },
}
# What the demo's customers text in, through the sandbox, signed as Twilio signs.
DEMO_INBOUND = [
    ("acme", "+14155550123", "Hi, is my appointment still on for Tuesday?"),
    ("acme", "+14155550124", "HELP"),
    ("acme", "+14155550125", "STOP"),
    ("acme", "+14155550126", "please stop texting me"),
    ("globex", "+13125550142", "Do you have the blue one in stock?"),
]


# Emails the demo sends Acme's way (the sandbox bounces bounce@…).
DEMO_EMAILS = ["ana.customer@example.com", "bounce@example.com"]


def demo_account_sid(slug: str) -> str:
    return "AC" + hashlib.sha256(f"commsportal-demo:{slug}".encode()).hexdigest()[:32]


class Command(BaseCommand):
    help = "Run the portal with demo data, the Twilio sandbox, a Celery worker and beat (development only)."

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--sandbox-port", type=int, default=8765)
        parser.add_argument("--no-serve", action="store_true", help="Load demo data and exit.")

    def handle(self, *args, **opts):
        if not settings.DEBUG:
            raise CommandError("The demo runs only with DEBUG on (it prints passwords and uses a local sandbox).")
        if not current_app.conf.broker_url:
            # Celery's fallback app: the project's app was not loaded, so tasks would go nowhere.
            raise CommandError("No configured Celery app: the project's settings package must load it.")
        (settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        self._load_demo_data()
        self._print_logins(opts["addrport"])
        if opts["no_serve"]:
            return
        env = os.environ.copy()
        env.setdefault("PUBLIC_BASE_URL", f"http://{opts['addrport']}")
        sandbox = None
        if not settings.TWILIO_API_BASE_URL:
            sandbox = self._start_sandbox(opts["sandbox_port"], env["PUBLIC_BASE_URL"].rstrip("/"))
            env["TWILIO_API_BASE_URL"] = sandbox.base_url
            env.setdefault("TWILIO_ACCOUNT_SID", DEV_PARENT_ACCOUNT_SID)
            env.setdefault("TWILIO_AUTH_TOKEN", DEV_PARENT_AUTH_TOKEN)
            if not settings.SENDGRID_API_KEY:
                # SendGrid too: mail send at the sandbox, its signed events back to the portal.
                env["SENDGRID_API_HOST"] = sandbox.base_url
                env["SENDGRID_API_KEY"] = sandbox.sendgrid_api_key
                env["SENDGRID_WEBHOOK_PUBLIC_KEY"] = sandbox.sendgrid_public_key
                sandbox.sendgrid_event_webhook_url = env["PUBLIC_BASE_URL"].rstrip("/") + "/webhooks/sendgrid/events/"
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "commsportal", "worker", "--beat", "--pool=solo", "-l", "info"],
                env=env,
            ),
            subprocess.Popen(
                [sys.executable, "manage.py", "runserver", opts["addrport"], "--noreload"],
                env=env,
                cwd=settings.BASE_DIR,
            ),
        ]
        if sandbox is not None:
            threading.Thread(target=self._demo_traffic, args=(sandbox, opts["addrport"]), daemon=True).start()
        self._supervise(children, sandbox)

    def _load_demo_data(self) -> None:
        self.second_factors: dict[str, tuple[str, list[str]]] = {}
        for spec in DEMO_TENANTS:
            existing = Tenant.objects.filter(slug=spec["slug"]).first()
            fields = {"name": spec["name"], "timezone": spec["timezone"], "account_sid": demo_account_sid(spec["slug"])}
            if existing is None or not existing.auth_token:
                fields["auth_token"] = secrets.token_hex(16)
            tenant, _ = tenant_upsert(slug=spec["slug"], fields=fields, audit=SYSTEM)
        for username, memberships, support, superuser in DEMO_USERS:
            user, _ = portal_user_upsert(username=username, password=DEMO_PASSWORD)
            for slug, role in memberships:
                membership_set(user=user, tenant=Tenant.objects.get(slug=slug), role=role, audit=SYSTEM)
            if support:
                support_grant(user=user, audit=SYSTEM)
            if superuser:
                superuser_grant(user=user, audit=SYSTEM)
            if support or superuser:
                # Staff must pass a second factor: the demo enrols an authenticator app for them
                # and prints its key and two fresh recovery codes.
                self.second_factors[username] = totp_device_provision(user=user, audit=SYSTEM)

    def _start_sandbox(self, port: int, public: str) -> TwilioSandbox:
        sandbox = TwilioSandbox(
            port=port, parent_account_sid=DEV_PARENT_ACCOUNT_SID, parent_auth_token=DEV_PARENT_AUTH_TOKEN
        ).start()
        for spec in DEMO_TENANTS:
            tenant = Tenant.objects.get(slug=spec["slug"])
            sandbox.register_account(tenant.account_sid, tenant.auth_token.reveal(), friendly_name=tenant.name)
            for number in spec["numbers"]:
                webhooks = {
                    "SmsUrl": f"{public}/webhooks/twilio/messaging/inbound/",
                    "VoiceUrl": f"{public}/webhooks/twilio/voice/inbound/",
                }
                if spec.get("call_status_callback", True):
                    webhooks["StatusCallback"] = f"{public}/webhooks/twilio/voice/status/"
                sandbox.seed_number(tenant.account_sid, number, **webhooks)
        self.stdout.write(f"Twilio sandbox (local stand-in, no Twilio account needed): {sandbox.base_url}/sandbox/")
        self._print_phone(sandbox.base_url)
        return sandbox

    def _print_phone(self, base: str) -> None:
        """How to ring a demo number from the sandbox's virtual phone and walk its menu."""
        (_slug, number), flow = next(iter(DEMO_FLOWS.items()))
        keys = ", ".join(
            f"{o['digit']} {ACTIONS[o['action']['type']].lower()}" for o in flow["definition"]["menu"]["options"]
        )
        calls = f"{base}/sandbox/calls"
        self.stdout.write(
            f"Call {number} ({flow['name']}) from the sandbox's phone: {base}/sandbox/phone\n"
            f"  or: curl -d From={DEMO_CALLER} -d To={number} {calls}/incoming   (answers the CallSid and transcript)\n"
            f"  menu keys: {keys}; then curl -d digits=2 {calls}/<CallSid>/digits,\n"
            f"  -d seconds=5 {calls}/<CallSid>/speak (a voicemail), {calls}/<CallSid>/hangup; "
            f"GET {calls}/<CallSid> shows what was said. The call appears under Calls in the portal."
        )

    def _demo_traffic(self, sandbox: TwilioSandbox, addrport: str) -> None:
        """Once the portal answers, play the demo customers' texts through the signed webhook path."""
        for _ in range(60):
            try:
                if requests.get(f"http://{addrport}/healthz", timeout=2).status_code in (200, 503):
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        for slug, sender, body in DEMO_INBOUND:
            spec = next(s for s in DEMO_TENANTS if s["slug"] == slug)
            tenant = Tenant.objects.get(slug=slug)
            try:
                requests.post(
                    f"{sandbox.base_url}/sandbox/inbound",
                    data={"AccountSid": tenant.account_sid, "From": sender, "To": spec["numbers"][0], "Body": body},
                    timeout=10,
                )
            except requests.RequestException as exc:
                self.stderr.write(f"demo traffic: {exc}")
        self._demo_email()
        # Beat's first run of these is one interval away: run them now, so the numbers page and
        # /healthz's Twilio reachability are filled from the start. The project's Celery app is
        # the current one (the settings package loads it; `handle` checked).
        for task in ("tenants.tasks.numbers_sync_all", "tenants.tasks.twilio_reachability_check"):
            current_app.send_task(task)
        self._seed_call_flows()

    def _seed_call_flows(self) -> None:
        """Give each demo number its call flow once the sync has brought the number in (a flow
        belongs to a synced number); an existing flow, perhaps edited since, is kept."""
        for (slug, number), flow in DEMO_FLOWS.items():
            tenant = Tenant.objects.get(slug=slug)
            numbers = PhoneNumber.objects.for_tenant(tenant).filter(phone_number=number, released_at__isnull=True)
            deadline = time.monotonic() + 120
            while (synced := numbers.first()) is None and time.monotonic() < deadline:
                time.sleep(0.5)
            if synced is None:
                self.stderr.write(f"demo: {number} was not synced, so it has no call flow")
                continue
            if flow_for_number(tenant=tenant, number=synced) is None:
                call_flow_save(
                    tenant=tenant, number=synced, name=flow["name"], definition=flow["definition"], audit=SYSTEM
                )
            self.stdout.write(f"Call flow {flow['name']!r} answers {number}: call it from the sandbox's phone.")

    def _demo_email(self) -> None:
        """Two emails through the sandbox's SendGrid: one delivered, one bounced (its address
        then lands on Acme's suppression list), so the email pages are not empty."""
        acme = Tenant.objects.get(slug="acme")
        for to in DEMO_EMAILS:
            email_send(
                tenant=acme,
                to=to,
                subject="Your consent receipt",
                text="You agreed to receive appointment reminders from Acme Health. Reply STOP to opt out.",
                category=EmailMessage.Category.CONSENT_RECEIPT,
            )

    def _print_logins(self, addrport: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"\ncommsportal demo on http://{addrport}/  (Ctrl-C stops everything)"))
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, memberships, support, _superuser in DEMO_USERS:
            role = ", ".join(f"{r} of {s}" for s, r in memberships) or (
                "support staff, all tenants read-only" if support else "platform operator (Django admin)"
            )
            self.stdout.write(f"  {username:<14} {role}")
        if self.second_factors:
            self.stdout.write(
                "Second factor for the staff logins: add the key to an authenticator app (time-based, 6 digits),"
                " or sign in once with a recovery code:"
            )
        for username, (secret, codes) in self.second_factors.items():
            self.stdout.write(f"  {username:<14} key {secret}   recovery codes {codes[0]}, {codes[1]}")
        self.stdout.write("")

    def _supervise(self, children: list[subprocess.Popen], sandbox: TwilioSandbox | None) -> None:
        def stop(*_args):
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
            if sandbox is not None:
                sandbox.stop()

        signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            failed = [c for c in children if c.poll() not in (None, 0)]
            if failed:
                self.stderr.write(f"A demo process exited with status {failed[0].returncode}; stopping the rest.")
        except KeyboardInterrupt:
            pass
        finally:
            stop()
