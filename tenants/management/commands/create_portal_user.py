"""`create_portal_user USERNAME --password PW [--tenant SLUG --role admin|viewer]... [--support]`.

Idempotent: re-running updates the password when given, and each `--tenant SLUG --role R`
pair adds or changes that membership.
"""

import argparse

from django.core.management.base import BaseCommand, CommandError

from tenants.audit import SYSTEM
from tenants.management.secrets import read_secret
from tenants.models import Membership, Tenant
from tenants.services import LastAdminError, membership_set, portal_user_upsert, superuser_grant, support_grant


class _MembershipAction(argparse.Action):
    """Collects `--tenant SLUG [--role ROLE]` pairs in command-line order, so a role always
    belongs to the tenant written just before it (`--tenant a --tenant b --role admin` makes
    the user admin of b, not of a)."""

    def __call__(self, parser, namespace, values, option_string=None):
        pairs = [list(p) for p in getattr(namespace, self.dest) or []]
        if option_string == "--tenant":
            pairs.append([values, Membership.Role.VIEWER, False])
        elif not pairs or pairs[-1][2]:
            parser.error("Each --role must follow its --tenant.")
        else:
            pairs[-1][1:] = [values, True]
        setattr(namespace, self.dest, pairs)


class Command(BaseCommand):
    help = "Create or update a portal user and their tenant memberships."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", help="'-' reads it from stdin, 'env:NAME' from the environment.")
        parser.add_argument("--tenant", dest="memberships", action=_MembershipAction, default=[], metavar="SLUG")
        parser.add_argument(
            "--role",
            dest="memberships",
            action=_MembershipAction,
            choices=[c for c, _ in Membership.Role.choices],
            help="The role in the --tenant just before it (default viewer).",
        )
        parser.add_argument(
            "--support", action="store_true", help="Make the user support staff (all tenants, read-only)."
        )
        parser.add_argument("--superuser", action="store_true", help="Platform operator with Django admin access.")

    def handle(self, *args, username, **opts):
        resolved = []
        for slug, role, _ in opts["memberships"]:
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
            try:
                _, outcome = membership_set(user=user, tenant=tenant, role=role, audit=SYSTEM)
            except LastAdminError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"  {tenant.slug}: {role} ({outcome})")
        if opts["support"]:
            changed = support_grant(user=user, audit=SYSTEM)
            self.stdout.write("  support staff" + (" (granted)" if changed else " (already)"))
        if opts["superuser"] and superuser_grant(user=user, audit=SYSTEM):
            self.stdout.write("  superuser (granted)")
