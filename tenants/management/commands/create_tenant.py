"""`create_tenant SLUG --name NAME (--account-sid AC… --auth-token TOKEN | --create-subaccount)`.

Idempotent: re-running with the same SLUG updates the given fields. With
`--create-subaccount` it first looks for a subaccount named NAME under the parent account, so a
re-run after a half-finished attempt never creates a second one.
"""

import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants.audit import SYSTEM
from tenants.crypto import Secret
from tenants.lifecycle import subaccount_find_or_create
from tenants.management.secrets import read_secret
from tenants.models import Tenant
from tenants.services import tenant_upsert
from tenants.twilio import TwilioError


class Command(BaseCommand):
    help = "Create or update a tenant (a Twilio subaccount)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name")
        parser.add_argument("--account-sid")
        parser.add_argument(
            "--auth-token",
            help="The subaccount's auth token; '-' reads it from stdin, 'env:NAME' from the environment. "
            "Defaults to $TWILIO_SUBACCOUNT_AUTH_TOKEN when set.",
        )
        parser.add_argument(
            "--create-subaccount", action="store_true", help="Create (or find) the subaccount at Twilio."
        )
        parser.add_argument("--api-key-sid")
        parser.add_argument("--api-key-secret", help="'-' or 'env:NAME' to keep it out of the process list.")
        parser.add_argument("--status", choices=[c for c, _ in Tenant.Status.choices])
        parser.add_argument("--timezone")
        parser.add_argument("--messaging-service-sid")
        parser.add_argument("--verify-service-sid")
        parser.add_argument("--sender-email")
        parser.add_argument("--keyword-replies", choices=[c for c, _ in Tenant.KeywordReplies.choices])

    def handle(self, *args, slug, **opts):
        existing = Tenant.objects.filter(slug=slug).first()
        token_arg = opts["auth_token"]
        if token_arg is None and os.environ.get("TWILIO_SUBACCOUNT_AUTH_TOKEN") and not opts["create_subaccount"]:
            token_arg = "env:TWILIO_SUBACCOUNT_AUTH_TOKEN"
        fields = {}
        if opts["name"]:
            fields["name"] = opts["name"]
        elif existing is None:
            raise CommandError("--name is required for a new tenant.")
        if opts["create_subaccount"]:
            if opts["account_sid"] or token_arg:
                raise CommandError("Use either --create-subaccount or --account-sid/--auth-token, not both.")
            fields.update(self._subaccount(fields.get("name") or existing.name, existing=existing))
        else:
            if opts["account_sid"]:
                fields["account_sid"] = opts["account_sid"]
            token = read_secret(token_arg, what="auth token")
            if token:
                fields["auth_token"] = token
            if existing is None and not ("account_sid" in fields and "auth_token" in fields):
                raise CommandError("A new tenant needs --account-sid and --auth-token, or --create-subaccount.")
        secret = read_secret(opts["api_key_secret"], what="API key secret")
        for option, field in [
            ("api_key_sid", "api_key_sid"),
            ("status", "status"),
            ("timezone", "timezone"),
            ("messaging_service_sid", "messaging_service_sid"),
            ("verify_service_sid", "verify_service_sid"),
            ("sender_email", "sender_email"),
            ("keyword_replies", "keyword_replies"),
        ]:
            if opts[option] is not None:
                fields[field] = opts[option]
        if secret:
            fields["api_key_secret"] = secret
        if existing is not None:
            # Only what really changes is written (and audited): a re-run is a no-op.
            fields = {k: v for k, v in fields.items() if _plain(getattr(existing, k)) != _plain(v)}
            if not fields:
                self.stdout.write(f"Tenant {slug} ({existing.account_sid}) unchanged.")
                return
        try:
            tenant, created = tenant_upsert(slug=slug, fields=fields, audit=SYSTEM)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        verb = "Created" if created else "Updated"
        changed = ", ".join(sorted(fields)) or "nothing"
        self.stdout.write(self.style.SUCCESS(f"{verb} tenant {tenant.slug} ({tenant.account_sid}); fields: {changed}."))

    def _subaccount(self, friendly_name: str, *, existing: Tenant | None) -> dict:
        # The find-or-create rules live in tenants/lifecycle.py, shared with the operator pages.
        try:
            sub = subaccount_find_or_create(
                friendly_name=friendly_name, account_sid=existing.account_sid if existing is not None else ""
            )
        except TwilioError as exc:
            raise CommandError(str(exc)) from exc
        if sub.created:
            self.stdout.write(f"Created subaccount {sub.sid} named {friendly_name!r}.")
        else:
            self.stdout.write(f"Found existing subaccount {sub.sid} named {sub.friendly_name!r}; reusing it.")
        return {"account_sid": sub.sid, "auth_token": sub.auth_token, "status": sub.status}


def _plain(value):
    """Compare secrets by value: a `Secret` never equals the string it wraps."""
    return value.reveal() if isinstance(value, Secret) else value
