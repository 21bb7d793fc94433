"""tenants.rendered and `{% memo %}`: a form's fragment rendered once per key, never stale."""

import pytest
from django import forms
from django.http import QueryDict
from django.template import Context, Template
from django.test import override_settings

from tenants import rendered


class ColourForm(forms.Form):
    colour = forms.ChoiceField(choices=[("red", "Red"), ("blue", "Blue")], required=False)
    size = forms.IntegerField(required=False, min_value=1)


TEMPLATE = Template(
    "{% load fragments %}{% memo form slug %}<form>{{ form.as_p }}<a href='/t/{{ slug }}/'>x</a>"
    "{{ renders.tick }}</form>{% endmemo %}"
)


class Counting:
    """Counts how often the memo's body is rendered."""

    def __init__(self):
        self.count = 0

    def tick(self):
        self.count += 1
        return ""


@pytest.fixture(autouse=True)
def _empty():
    rendered.fragments_clear()
    yield
    rendered.fragments_clear()


def render(form, slug="acme"):
    renders = Counting()
    html = TEMPLATE.render(Context({"form": form, "slug": slug, "renders": renders}))
    return html, renders.count


def test_the_same_form_renders_once_and_reads_the_same():
    first, renders = render(ColourForm(QueryDict("colour=blue")))
    again, renders_again = render(ColourForm(QueryDict("colour=blue&cursor=abc")))  # paging only
    assert (renders, renders_again) == (1, 0)
    assert again == first and 'value="blue" selected' in first


@pytest.mark.parametrize(
    "other",
    [
        lambda: (ColourForm(QueryDict("colour=red")), "acme"),  # other data
        lambda: (ColourForm(QueryDict("size=0")), "acme"),  # errors
        lambda: (ColourForm(), "acme"),  # unbound
        lambda: (ColourForm(QueryDict("colour=blue")), "globex"),  # a vary value
    ],
)
def test_anything_the_body_shows_is_in_the_key(other):
    render(ColourForm(QueryDict("colour=blue")))
    form, slug = other()
    html, renders = render(form, slug)
    assert renders == 1
    with override_settings(DEBUG=True):  # the same template, not memoised
        assert html == TEMPLATE.render(Context({"form": form, "slug": slug, "renders": Counting()}))


def test_choices_are_in_the_key():
    render(ColourForm())
    form = ColourForm()
    form.fields["colour"].choices = [("red", "Red"), ("green", "Green")]
    html, renders = render(form)
    assert renders == 1 and "Green" in html


def test_errors_show_on_the_memoised_form():
    html, _ = render(ColourForm(QueryDict("size=0")))
    again, renders = render(ColourForm(QueryDict("size=0")))
    assert renders == 0 and "greater than or equal to 1" in again == html


@override_settings(DEBUG=True)
def test_off_with_debug():
    assert render(ColourForm())[1] == 1
    assert render(ColourForm())[1] == 1


def test_the_store_is_bounded(monkeypatch):
    monkeypatch.setattr(rendered, "MAX_FRAGMENTS", 3)
    for size in range(1, 6):
        render(ColourForm(QueryDict(f"size={size}")))
    assert len(rendered._held) == 3
    assert render(ColourForm(QueryDict("size=5")))[1] == 0  # the newest stay
    assert render(ColourForm(QueryDict("size=1")))[1] == 1  # the oldest went
