"""Forms of the ledger pages (opt-outs, consent, imports, reviews, keywords, number lookup).
Every phone number goes through `tenants.phones.phone_parse`."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone

from tenants.phones import tenant_phone_region

from ..intake.keywords import (
    DEFAULT_HELP_KEYWORDS,
    DEFAULT_OPT_IN_KEYWORDS,
    DEFAULT_OPT_OUT_KEYWORDS,
    classify_keyword,
    normalize_keyword,
)
from ..ledgers.selectors import opt_out_latest, tenant_keyword_list
from ..models import ConsentEvent, OptOutEvent, Purpose, TenantKeyword
from .fields import NumberSearchField, PhoneField

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


class NumberLookupForm(forms.Form):
    phone = PhoneField(label="Number", help_text="")


class OptOutSearchForm(forms.Form):
    q = NumberSearchField(widget=forms.TextInput(attrs={"placeholder": "+14155550123 or 4567", "type": "search"}))
    state = forms.ChoiceField(
        required=False,
        choices=[("", "Any state"), *OptOutEvent.Action.choices],
        label="State",
    )


class OptOutChangeForm(forms.Form):
    """An admin opts a number out, or back in, always saying why."""

    phone = PhoneField()
    action = forms.ChoiceField(
        choices=[
            (OptOutEvent.Action.OPT_OUT, "Opt out (stop all messages)"),
            (OptOutEvent.Action.OPT_IN, "Opt back in"),
        ],
        widget=forms.RadioSelect,
        initial=OptOutEvent.Action.OPT_OUT,
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=1000,
        help_text="Required and kept in the ledger and audit log, e.g. “Asked by phone on 3 May, ticket #123”.",
    )

    def __init__(self, *args, tenant, **kwargs):
        self.tenant = tenant
        super().__init__(*args, **kwargs)
        self.fields["phone"].region = tenant_phone_region(tenant)

    def clean(self):
        cleaned = super().clean()
        phone, action = cleaned.get("phone"), cleaned.get("action")
        if phone and action:
            latest = opt_out_latest(tenant=self.tenant, phone=phone)
            opted_out = latest is not None and latest.action == OptOutEvent.Action.OPT_OUT
            if action == OptOutEvent.Action.OPT_OUT and opted_out:
                raise forms.ValidationError(
                    "This number is already opted out (since %(when)s).",
                    params={"when": f"{timezone.localtime(latest.created_at):%Y-%m-%d %H:%M %Z}"},
                )
            if action == OptOutEvent.Action.OPT_IN and not opted_out:
                raise forms.ValidationError("This number is not opted out: there is nothing to lift.")
        return cleaned


class CsvImportForm(forms.Form):
    """Upload a CSV; a dry run validates and reports without writing anything."""

    file = forms.FileField(
        required=False,
        label="CSV file",
        help_text="UTF-8, comma- or semicolon-separated, a header row first. At most 5 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    dry_run = forms.BooleanField(
        required=False, initial=True, label="Dry run: check the file and report, import nothing"
    )
    upload = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload and upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 5 MB: split it into several imports.")
        return upload

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("file") and not cleaned.get("upload") and "file" not in self.errors:
            self.add_error("file", "Choose a CSV file.")
        return cleaned


class ConsentSearchForm(forms.Form):
    q = NumberSearchField(widget=forms.TextInput(attrs={"placeholder": "+14155550123 or 4567", "type": "search"}))
    purpose = forms.ChoiceField(required=False, choices=[("", "Any purpose"), *Purpose.choices])
    action = forms.ChoiceField(required=False, choices=[("", "Granted or revoked"), *ConsentEvent.Action.choices])
    method = forms.ChoiceField(required=False, choices=[("", "Any method"), *ConsentEvent.Method.choices])


class ConsentCaptureForm(forms.Form):
    """Staff record a consent they collected (paper form, phone call, a web form elsewhere)."""

    phone = PhoneField()
    purpose = forms.ChoiceField(choices=Purpose.choices)
    action = forms.ChoiceField(choices=ConsentEvent.Action.choices, widget=forms.RadioSelect, initial="granted")
    method = forms.ChoiceField(
        choices=[c for c in ConsentEvent.Method.choices if c[0] != ConsentEvent.Method.IMPORT],
        help_text="How the person gave (or withdrew) consent.",
    )
    source = forms.CharField(
        required=False, max_length=255, help_text="Where: form URL, campaign, store, paper form reference…"
    )
    captured_at = forms.DateTimeField(
        label="Consented at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="When the person consented or withdrew, not when you type it in; in the tenant's time zone.",
    )
    disclosure_text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="The exact text the person was shown or read. Required for marketing consent (TCPA).",
    )
    disclosure_version = forms.CharField(required=False, max_length=40, help_text="e.g. v3 or 2025-04 paper form")
    ip_address = forms.GenericIPAddressField(
        required=False, label="Person's IP address", help_text="Optional: only when they used a form online."
    )
    user_agent = forms.CharField(
        required=False, label="Person's browser (user agent)", widget=forms.Textarea(attrs={"rows": 2})
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("captured_at", timezone.now().replace(second=0, microsecond=0))
        super().__init__(*args, **kwargs)

    def clean_captured_at(self):
        value = self.cleaned_data["captured_at"]
        if value > timezone.now() + timedelta(minutes=5):
            raise forms.ValidationError("Consent cannot be captured in the future.")
        return value

    def clean(self):
        cleaned = super().clean()
        if (
            cleaned.get("purpose") == Purpose.MARKETING
            and cleaned.get("action") == ConsentEvent.Action.GRANTED
            and not (cleaned.get("disclosure_text") or "").strip()
        ):
            self.add_error(
                "disclosure_text",
                "Marketing consent must keep the exact disclosure the person agreed to (TCPA written consent).",
            )
        return cleaned


class RevocationDecisionForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class UnmaskForm(forms.Form):
    reason = forms.CharField(
        min_length=10,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why you need the full number (ticket, caller verification…). Recorded in the audit log.",
    )


class TenantKeywordForm(forms.Form):
    """A tenant's own keyword, e.g. BAJA (opt-out) or ALTO (opt-out) for Spanish speakers."""

    kind = forms.ChoiceField(choices=TenantKeyword.Kind.choices)
    word = forms.CharField(max_length=40, help_text="The whole message must match, in any case. e.g. BAJA, ARRET")

    def __init__(self, *args, tenant, **kwargs):
        self.tenant = tenant
        super().__init__(*args, **kwargs)

    def clean_word(self):
        word = normalize_keyword(self.cleaned_data["word"])
        if not word:
            raise forms.ValidationError("Enter a keyword (letters or digits, not only punctuation).")
        return word

    def clean(self):
        cleaned = super().clean()
        word, kind = cleaned.get("word"), cleaned.get("kind")
        if not word or not kind:
            return cleaned
        existing = {k: [] for k in TenantKeyword.Kind.values}
        for keyword in tenant_keyword_list(tenant=self.tenant):
            existing[keyword.kind].append(keyword.word)
        # Classify exactly as an inbound message would be, accents and defaults included.
        taken = classify_keyword(
            word,
            extra_opt_out=existing[TenantKeyword.Kind.OPT_OUT],
            extra_opt_in=existing[TenantKeyword.Kind.OPT_IN],
            extra_help=existing[TenantKeyword.Kind.HELP],
        )
        if taken is None:
            return cleaned
        is_default = word in {*DEFAULT_OPT_OUT_KEYWORDS, *DEFAULT_OPT_IN_KEYWORDS, *DEFAULT_HELP_KEYWORDS}
        label = TenantKeyword.Kind(taken).label.lower()
        if taken != kind:
            raise forms.ValidationError(
                "“%(word)s” is already %(what)s %(label)s keyword: one word cannot mean two things.",
                params={"word": word, "what": "a default" if is_default else "this tenant's", "label": label},
            )
        raise forms.ValidationError(
            "“%(word)s” is already %(what)s %(label)s keyword.",
            params={"word": word, "what": "a default" if is_default else "this tenant's", "label": label},
        )
