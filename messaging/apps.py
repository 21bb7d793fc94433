from django.apps import AppConfig


class MessagingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "messaging"

    def ready(self):
        # Celery's autodiscovery imports `<app>.tasks` only; bulk sends keep theirs apart.
        from . import bulk_tasks  # noqa: F401

        # Models are loaded only now: messaging's parts of tenants' pages and jobs import them.
        from .registrations import registrations_install

        registrations_install()
