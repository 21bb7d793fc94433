"""`erase_number SLUG PHONE --reason TEXT [--actor USERNAME] [--at-twilio]`: GDPR erasure.

The same service as the operator page (tenants/retention.py `number_erase`). Asks for
confirmation unless `--yes`. Prints only the marker, never the number.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.phones import phone_parse, tenant_phone_region
from tenants.retention import number_erase


class Command(BaseCommand):
    help = "Erase one phone number from one tenant (GDPR); it stays suppressed."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("phone")
        parser.add_argument("--reason", required=True, help="Why, and the request's reference (audit log).")
        parser.add_argument("--actor", help="Username recorded as the actor (default: system).")
        parser.add_argument("--at-twilio", action="store_true", help="Also redact the bodies in Twilio's log.")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args, slug, phone, reason, actor, at_twilio, yes, **opts):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}.")
        try:
            phone = phone_parse(phone, region=tenant_phone_region(tenant))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        user = None
        if actor:
            user = get_user_model().objects.filter(username=actor).first()
            if user is None:
                raise CommandError(f"No user {actor!r}.")
        if not yes and input(f"Erase this number from {tenant.slug}? This cannot be undone. [y/N] ").lower() != "y":
            raise CommandError("Cancelled.")
        result = number_erase(
            tenant=tenant, phone=phone, reason=reason, audit=AuditContext.of(user), at_twilio=at_twilio or None
        )
        self.stdout.write(
            self.style.SUCCESS(f"Erased as {result.marker}: {result.summary}; the number stays suppressed.")
        )
        for error in result.errors:
            self.stderr.write(error)
