from django import template

from tenants.phones import phone_for_viewer

register = template.Library()


@register.simple_tag(takes_context=True)
def phone(context, value):
    """Render a phone number by the one display rule (`tenants.phones.phone_for_viewer`)."""
    return phone_for_viewer(
        value, access=context.get("tenant_access"), own_numbers=context.get("tenant_own_numbers", ())
    )
