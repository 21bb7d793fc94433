from django import template

from tenants.phones import phone_mask

register = template.Library()


@register.simple_tag(takes_context=True)
def phone(context, value):
    """Render a phone number, masked when the viewer is support staff."""
    access = context.get("tenant_access")
    if access is not None and access.masks_numbers:
        return phone_mask(value)
    return value or ""


@register.filter
def masked_phone(value):
    return phone_mask(value)
