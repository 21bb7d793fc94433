"""`{% memo value… %}…{% endmemo %}`: render a fragment once per process and key
(`tenants.rendered`), the key being every value the fragment is rendered from: a form by its
fingerprint (`form_fingerprint`), anything else by its text. Off with DEBUG, where templates
change under a running server."""

from django import template
from django.conf import settings
from django.forms import BaseForm

from tenants.rendered import form_fingerprint, fragment_get, fragment_put

register = template.Library()


def _key_part(value):
    return form_fingerprint(value) if isinstance(value, BaseForm) else str(value)


class MemoNode(template.Node):
    def __init__(self, nodelist, vary):
        self.nodelist, self.vary = nodelist, vary

    def render(self, context):
        if settings.DEBUG:
            return self.nodelist.render(context)
        key = (self.origin.name, self.token.position, *(_key_part(value.resolve(context)) for value in self.vary))
        html = fragment_get(key)
        if html is None:
            html = self.nodelist.render(context)
            fragment_put(key, html)
        return html


@register.tag
def memo(parser, token):
    """`{% memo filter_form tenant.slug %}`: every value the body is rendered from, nothing less."""
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError("memo needs every value its body is rendered from")
    nodelist = parser.parse(("endmemo",))
    parser.delete_first_token()
    return MemoNode(nodelist, [parser.compile_filter(bit) for bit in bits[1:]])
