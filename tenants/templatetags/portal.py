from django import template

from tenants.emails import email_for_viewer, email_text_for_viewer
from tenants.phones import DEFAULT_REGION, phone_for_viewer, phone_text_for_viewer, tenant_phone_region

register = template.Library()


@register.simple_tag(takes_context=True)
def phone(context, value):
    """Render a phone number by the one display rule (`tenants.phones.phone_for_viewer`)."""
    return phone_for_viewer(
        value, access=context.get("tenant_access"), own_numbers=context.get("tenant_own_numbers", ())
    )


@register.simple_tag(takes_context=True)
def phone_text(context, value):
    """Render free text (a failure reason, a body, a note) with the numbers inside it shown by
    the same rule (`tenants.phones.phone_text_for_viewer`). A tag rather than a filter because
    the rule needs the viewer and the tenant's own numbers from the context; use
    `{% phone_text value as shown %}{{ shown|truncatechars:80 }}` to truncate after masking,
    so a cut never leaves part of a number whole."""
    tenant = context.get("current_tenant") or context.get("tenant")
    return phone_text_for_viewer(
        value,
        access=context.get("tenant_access"),
        own_numbers=context.get("tenant_own_numbers", ()),
        region=tenant_phone_region(tenant) if tenant is not None else DEFAULT_REGION,
    )


@register.simple_tag(takes_context=True)
def email_address(context, value):
    """Render an email address by the same rule (`tenants.emails.email_for_viewer`)."""
    return email_for_viewer(value, access=context.get("tenant_access"))


@register.simple_tag(takes_context=True)
def email_text(context, value):
    """Render free text with the addresses in it shown by that rule."""
    return email_text_for_viewer(value, access=context.get("tenant_access"))
