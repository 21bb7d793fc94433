"""`{% memo_form form vary… %}…{% endmemo_form %}`: render a form's fragment once per process
and key (`tenants.rendered`). Off with DEBUG, where templates change under a running server."""

from django import template
from django.conf import settings

from tenants.rendered import form_fingerprint, fragment_get, fragment_put

register = template.Library()


class MemoFormNode(template.Node):
    def __init__(self, nodelist, form, vary):
        self.nodelist, self.form, self.vary = nodelist, form, vary

    def render(self, context):
        if settings.DEBUG:
            return self.nodelist.render(context)
        form = self.form.resolve(context)
        key = (
            self.origin.name,
            self.token.position,
            form_fingerprint(form),
            tuple(str(value.resolve(context)) for value in self.vary),
        )
        html = fragment_get(key)
        if html is None:
            html = self.nodelist.render(context)
            fragment_put(key, html)
        return html


@register.tag
def memo_form(parser, token):
    """`{% memo_form filter_form tenant.slug %}`: the form, then every other value the body uses."""
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError("memo_form needs the form, then what else the body uses")
    nodelist = parser.parse(("endmemo_form",))
    parser.delete_first_token()
    return MemoFormNode(nodelist, parser.compile_filter(bits[1]), [parser.compile_filter(b) for b in bits[2:]])
