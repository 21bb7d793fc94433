from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TenantsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tenants"
    verbose_name = "Tenants and access"

    def ready(self) -> None:
        # After the last app migrates, (re)install the beat schedule: a fresh database gets it
        # with no extra step, and new jobs arrive with the deploy's migrate.
        post_migrate.connect(_install_once, sender=self, dispatch_uid="tenants.schedules_install")


def _install_once(sender, using="default", **kwargs) -> None:
    from .schedules import schedules_install

    schedules_install()
