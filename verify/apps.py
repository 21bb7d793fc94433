from django.apps import AppConfig


class VerifyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "verify"

    def ready(self) -> None:
        from .email.registrations import email_registrations_install

        email_registrations_install()
