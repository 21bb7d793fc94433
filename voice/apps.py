from django.apps import AppConfig


class VoiceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "voice"

    def ready(self):
        # Models are loaded only now: voice's parts of tenants' pages and jobs import them.
        from .registrations import registrations_install

        registrations_install()
