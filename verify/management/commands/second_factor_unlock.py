"""`manage.py second_factor_unlock USERNAME [--ip IP]`: lift the lock that wrong second-factor
codes put on an account (from every address, or one), as `axes_reset_username` does for wrong
passwords. Audited."""

from django.core.management.base import BaseCommand

from tenants.audit import SYSTEM
from verify.second_factor.throttle import code_lock_reset


class Command(BaseCommand):
    help = "Lift the wrong-code lock on an account's second factor now (every address, or --ip)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--ip", help="Only the lock from this client address.")

    def handle(self, *args, **opts):
        cleared = code_lock_reset(username=opts["username"], ip_address=opts["ip"], audit=SYSTEM)
        if cleared:
            self.stdout.write(f"Unlocked {opts['username']}: {cleared} address(es) cleared.")
        else:
            self.stdout.write(f"No second-factor lock on record for {opts['username']}.")
