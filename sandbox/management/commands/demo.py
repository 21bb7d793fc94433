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
from tenants.models import Tenant
from tenants.services import membership_set, portal_user_upsert, superuser_grant, support_grant, tenant_upsert
from verify.email.sending import email_send
from verify.models import EmailMessage

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
        return sandbox

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
