from django.apps import AppConfig


class MessagingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "messaging"

    def ready(self):
        # Models are loaded only now: messaging's parts of tenants' pages and jobs import them.
        from .registrations import registrations_install

        registrations_install()
