"""Rendered HTML fragments held per process, keyed on everything they are rendered from.

Some fragments render the same HTML for the same few inputs on every page, and rendering them
is a large part of the page: a log page's filter form (crispy forms over django-filter: every
widget and every `<option>` through a template, a fifth of the message log) and the tenant
sidebar (twenty links, a tenth). `{% memo value… %}…{% endmemo %}`
(tenants/templatetags/fragments.py) renders its body once per distinct key and serves the held
HTML afterwards. A form is keyed by `form_fingerprint`: its class, its bound data (without the
keyset `cursor`, which only pages), its errors and the choices of every field (a tenant's bulk
sends, read per request as before); any other value by its text (the tenant's slug for its
links, the current page's name, the overdue count). Whatever else the body shows must be one
of those: the tag is for fragments whose every input is in the key, nothing else. A bounded
LRU, so memory stays flat (at most `MAX_FRAGMENTS` fragments of a few KB each per process).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

#: Query parameters that never change a filter form's HTML (keyset paging).
PAGING_PARAMS = frozenset({"cursor"})
MAX_FRAGMENTS = 512

_held: OrderedDict[Hashable, str] = OrderedDict()
_lock = threading.Lock()


def form_fingerprint(form) -> tuple:
    """Everything a rendered form depends on besides its class's code. A model choice field's
    choices are a query (the tenant's bulk sends), run here on every request as it was to
    render; rendering after a miss runs it once more."""
    data = ()
    if form.is_bound:
        data = tuple(sorted((key, tuple(form.data.getlist(key))) for key in form.data if key not in PAGING_PARAMS))
    choices = tuple((name, _field_choices(field)) for name, field in form.fields.items() if hasattr(field, "choices"))
    errors = tuple(sorted((name, tuple(messages)) for name, messages in form.errors.items())) if form.is_bound else ()
    return (type(form).__module__, type(form).__qualname__, form.prefix, form.is_bound, data, choices, errors)


def _field_choices(field) -> tuple:
    """A field's choices as text. A model choice field's are read with a plain query: its own
    iterator streams through a server-side cursor (DECLARE, FETCH, CLOSE: three round trips)."""
    queryset = getattr(field, "queryset", None)
    if queryset is not None:
        return tuple((str(obj.pk), str(field.label_from_instance(obj))) for obj in list(queryset))
    return tuple((str(value), str(label)) for value, label in field.choices)


def fragment_get(key: Hashable) -> str | None:
    with _lock:
        html = _held.get(key)
        if html is not None:
            _held.move_to_end(key)
        return html


def fragment_put(key: Hashable, html: str) -> None:
    with _lock:
        _held[key] = html
        _held.move_to_end(key)
        while len(_held) > MAX_FRAGMENTS:
            _held.popitem(last=False)


def fragments_clear() -> None:
    with _lock:
        _held.clear()
