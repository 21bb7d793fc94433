"""Forms of the consent pages: the admin's form editor, and the public page's two steps."""

from __future__ import annotations

from django import forms

from messaging.forms.fields import PhoneField
from messaging.models import Purpose

from ..models import ConsentForm


class ConsentFormForm(forms.Form):
    """Create or edit a consent form. Slug and purpose are fixed once published (the public URL
    and what earlier consents were for); brand, frequency and disclosure make a new version."""

    title = forms.CharField(max_length=120)
    slug = forms.SlugField(max_length=60, help_text="Public page: /c/<tenant>/<slug>/")
    purpose = forms.ChoiceField(choices=Purpose.choices)
    brand = forms.CharField(max_length=80, help_text="Named in the disclosure and in every confirmation.")
    frequency = forms.CharField(max_length=80, initial="Msg frequency varies", label="Message frequency")
    disclosure_text = forms.CharField(
        label="Disclosure (exact text shown)",
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=2000,
        help_text="Changing it creates a new version; consents keep the version their person saw.",
    )
    collect_email = forms.BooleanField(required=False, label="Ask for an email address (optional for the person)")
    is_published = forms.BooleanField(required=False, initial=True, label="Published")

    def __init__(self, *args, slug_taken=None, instance: ConsentForm | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.slug_taken = slug_taken
        if instance is not None:
            for name in ("slug", "purpose"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "Fixed once the form exists."

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if not self.fields["slug"].disabled and self.slug_taken and self.slug_taken(slug=slug):
            raise forms.ValidationError("Another form of this tenant already uses this slug.")
        return slug

    def clean_disclosure_text(self):
        text = self.cleaned_data["disclosure_text"].strip()
        if "STOP" not in text.upper():
            raise forms.ValidationError("The disclosure must tell people how to opt out (e.g. Reply STOP to cancel).")
        return text


class ConsentStartForm(forms.Form):
    """Step 1 of the public page. `website` is a honeypot: people never see it (CSS), bots fill it."""

    phone = PhoneField(label="Mobile number")
    email = forms.EmailField(required=False, label="Email (optional)")
    agree = forms.BooleanField(
        label="I agree to the terms above",
        error_messages={"required": "Tick the box to agree to the terms above."},
    )
    website = forms.CharField(required=False, label="Leave this field empty")

    def __init__(self, *args, region: str | None, collect_email: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["phone"].region = region
        if not collect_email:
            del self.fields["email"]


class ConsentCodeForm(forms.Form):
    code = forms.RegexField(
        regex=r"^\s*\d{4,10}\s*$",
        label="Code",
        error_messages={"invalid": "Enter the digits of the code you received."},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )


class ConsentResendForm(forms.Form):
    channel = forms.ChoiceField(choices=[("sms", "Text me again"), ("call", "Call me"), ("email", "Email me")])
