from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save

from .schedules import schedules_install


class TenantsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tenants"
    verbose_name = "Tenants and access"

    def ready(self) -> None:
        # After the last app migrates, (re)install the beat schedule: a fresh database gets it
        # with no extra step, and new jobs arrive with the deploy's migrate. The feature apps
        # register their jobs (and their parts of tenants' pages) in their own ready().
        post_migrate.connect(_install_once, sender=self, dispatch_uid="tenants.schedules_install")
        # Webhook gateways hold tenants' credentials in memory: any change to a tenant drops them.
        from .models import Tenant
        from .webhooks import webhook_credentials_changed

        post_save.connect(webhook_credentials_changed, sender=Tenant, dispatch_uid="tenants.webhook_saved")
        post_delete.connect(webhook_credentials_changed, sender=Tenant, dispatch_uid="tenants.webhook_deleted")


def _install_once(sender, using="default", **kwargs) -> None:
    schedules_install()
