"""`manage.py second_factor_reset USERNAME`: remove an account's authenticator app and recovery
codes (a lost phone and lost codes). Staff who must have a second factor enrol a new one at their
next sign-in; others sign in with the password alone until they turn it on again. Audited."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tenants.audit import SYSTEM
from verify.second_factor.services import second_factor_disable


class Command(BaseCommand):
    help = "Remove an account's second-factor devices (they enrol again at the next sign-in when required)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, **opts):
        user = get_user_model().objects.filter(username=opts["username"]).first()
        if user is None:
            raise CommandError(f"No user {opts['username']!r}.")
        removed = second_factor_disable(user=user, audit=SYSTEM, by_operator=True)
        if removed:
            self.stdout.write(f"Removed {removed} second-factor device(s) of {user.username}.")
        else:
            self.stdout.write(f"{user.username} has no second-factor device.")
