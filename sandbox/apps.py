from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """Installed only by development and test settings: it brings the `twilio_sandbox` and
    `demo` management commands; production code never imports it."""

    name = "sandbox"
    verbose_name = "Twilio sandbox (development)"
