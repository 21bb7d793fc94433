from django.apps import AppConfig


class VerifyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "verify"

    def ready(self):
        # Models are loaded only now: verify's parts of tenants' pages import them.
        from .registrations import registrations_install

        registrations_install()
