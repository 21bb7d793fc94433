"""Run the local Twilio REST API sandbox (see the `sandbox` package) until Ctrl-C.

The parent account's credentials come from settings (TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN);
when those are empty the sandbox's development defaults are used, and the portal must then be
configured with the same values.
"""

from django.conf import settings
from django.core.management.base import BaseCommand

from sandbox.server import TwilioSandbox
from sandbox.state import DEV_PARENT_ACCOUNT_SID, DEV_PARENT_AUTH_TOKEN, mask_secret


class Command(BaseCommand):
    help = "Serve a local stand-in for Twilio's REST API (no internet needed)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--callback-delay",
            type=float,
            default=0.5,
            help="Seconds between a message's or call's successive status callbacks.",
        )
        parser.add_argument(
            "--no-auto-register",
            action="store_true",
            help="Refuse unknown Account SIDs instead of registering them on first use.",
        )

    def handle(self, *args, **options):
        sid = getattr(settings, "TWILIO_ACCOUNT_SID", "") or DEV_PARENT_ACCOUNT_SID
        token = getattr(settings, "TWILIO_AUTH_TOKEN", "") or DEV_PARENT_AUTH_TOKEN
        sandbox = TwilioSandbox(
            host=options["host"],
            port=options["port"],
            parent_account_sid=sid,
            parent_auth_token=token,
            callback_delay=options["callback_delay"],
            auto_register_accounts=not options["no_auto_register"],
        )
        self.stdout.write(f"Twilio sandbox listening on {sandbox.base_url}")
        self.stdout.write(f"Parent account {sid}, auth token {mask_secret(token)}")
        if sid == DEV_PARENT_ACCOUNT_SID or token == DEV_PARENT_AUTH_TOKEN:
            self.stdout.write(
                "Using the sandbox's development parent credentials "
                "(sandbox.state.DEV_PARENT_ACCOUNT_SID / DEV_PARENT_AUTH_TOKEN): set "
                "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to them in the portal's environment."
            )
        self.stdout.write(
            self.style.SUCCESS(f"Set TWILIO_API_BASE_URL={sandbox.base_url} so the portal talks to the sandbox.")
        )
        self.stdout.write(
            "SendGrid stand-in: set SENDGRID_API_HOST="
            f"{sandbox.base_url} SENDGRID_API_KEY={sandbox.sendgrid_api_key} "
            f"SENDGRID_WEBHOOK_PUBLIC_KEY={sandbox.sendgrid_public_key} and POST the portal's "
            f"/webhooks/sendgrid/events/ URL as event_webhook_url to {sandbox.base_url}/sandbox/sendgrid"
        )
        self.stdout.write(f"Control endpoints: {sandbox.base_url}/sandbox/ (Ctrl-C to stop)")
        try:
            sandbox.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("Sandbox stopped.")
