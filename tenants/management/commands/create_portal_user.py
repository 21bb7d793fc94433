"""`create_portal_user USERNAME --password PW [--tenant SLUG --role admin|viewer]... [--support]`.

Idempotent: re-running updates the password when given, and each `--tenant SLUG --role R`
pair adds or changes that membership.
"""

from django.core.management.base import BaseCommand, CommandError

from tenants.management.secrets import read_secret
from tenants.models import Membership, Tenant
from tenants.services import membership_set, portal_user_upsert, support_grant


class Command(BaseCommand):
    help = "Create or update a portal user and their tenant memberships."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", help="'-' reads it from stdin, 'env:NAME' from the environment.")
        parser.add_argument("--tenant", action="append", default=[], metavar="SLUG")
        parser.add_argument("--role", action="append", default=[], choices=[c for c, _ in Membership.Role.choices])
        parser.add_argument(
            "--support", action="store_true", help="Make the user support staff (all tenants, read-only)."
        )
        parser.add_argument("--superuser", action="store_true", help="Platform operator with Django admin access.")

    def handle(self, *args, username, **opts):
        tenants, roles = opts["tenant"], opts["role"]
        if len(roles) > len(tenants):
            raise CommandError("Each --role must follow a --tenant.")
        roles = roles + [Membership.Role.VIEWER] * (len(tenants) - len(roles))
        resolved = []
        for slug, role in zip(tenants, roles, strict=True):
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {slug!r}.")
            resolved.append((tenant, role))
        password = read_secret(opts["password"], what="password")
        user, created = portal_user_upsert(username=username, password=password)
        self.stdout.write(
            f"{'Created' if created else 'Updated'} user {username}" + (" (password set)" if password else "") + "."
        )
        for tenant, role in resolved:
            _, outcome = membership_set(user=user, tenant=tenant, role=role)
            self.stdout.write(f"  {tenant.slug}: {role} ({outcome})")
        if opts["support"]:
            changed = support_grant(user=user)
            self.stdout.write("  support staff" + (" (granted)" if changed else " (already)"))
        if opts["superuser"] and not (user.is_superuser and user.is_staff):
            user.is_superuser = user.is_staff = True
            user.save(update_fields=["is_superuser", "is_staff"])
            self.stdout.write("  superuser (granted)")
