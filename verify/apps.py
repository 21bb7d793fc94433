from django.apps import AppConfig


class VerifyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "verify"

    def ready(self) -> None:
        # Models are loaded only now: verify's parts of tenants' pages and jobs import them.
        from .email.registrations import email_registrations_install
        from .registrations import registrations_install

        email_registrations_install()
        registrations_install()
