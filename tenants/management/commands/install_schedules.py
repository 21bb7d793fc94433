from django.core.management.base import BaseCommand

from tenants.schedules import all_periodic_tasks, schedules_install


class Command(BaseCommand):
    help = "Create or update the periodic jobs in django-celery-beat's database scheduler."

    def handle(self, *args, **opts):
        count = schedules_install()
        for job in all_periodic_tasks():
            self.stdout.write(f"  {job['task']} every {job['every']}")
        self.stdout.write(self.style.SUCCESS(f"{count} periodic task(s) installed."))
