"""Forms for message templates and bulk sends (validation rules live in the services)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from tenants.phones import phone_parse, tenant_phone_region

from ..delivery.bulk.upload import MAX_CSV_BYTES, CsvUpload, bulk_csv_read
from ..delivery.templating import template_list, template_name_taken, template_parse
from ..models import MessageTemplate, Purpose


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["name", "purpose", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 6, "data-sms-counter": "template-counter"})}
        help_texts = {
            "body": "Placeholders: {{first_name}} — lower-case letters, digits and underscores. "
            "The CSV of a bulk send needs one column per placeholder.",
        }

    def __init__(self, *args, tenant, **kwargs):
        self.tenant = tenant
        super().__init__(*args, **kwargs)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if template_name_taken(tenant=self.tenant, name=name, exclude_id=self.instance.pk or None):
            raise ValidationError("This tenant already has a template with that name.")
        return name

    def clean_body(self):
        body = self.cleaned_data["body"]
        parsed = template_parse(body)
        if parsed.errors:
            raise ValidationError(list(parsed.errors))
        return body


class BulkUploadForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="For your own reference, e.g. “Spring sale reminder”.")
    template = forms.ModelChoiceField(queryset=MessageTemplate.objects.none())
    purpose = forms.ChoiceField(
        choices=Purpose.choices, help_text="Decides the compliance rules (consent, quiet hours, caps)."
    )
    sender = forms.CharField(
        max_length=34,
        required=False,
        label="Sender number",
        help_text="The number to send from, in international format (+14155550123).",
    )
    csv_file = forms.FileField(
        label="Recipients (CSV)",
        help_text="UTF-8 CSV: a “phone” column, then one column per template variable. "
        f"Up to 100,000 rows and {MAX_CSV_BYTES // (1024 * 1024)} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def __init__(self, *args, tenant, **kwargs):
        self.tenant = tenant
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = template_list(tenant=tenant)
        if tenant.messaging_service_sid:
            service = tenant.messaging_service_sid
            self.fields["sender"].help_text = f"Optional: leave empty to send through the Messaging Service {service}."
        else:
            self.fields["sender"].required = True
        self.upload: CsvUpload | None = None

    def clean_sender(self):
        raw = self.cleaned_data["sender"].strip()
        return phone_parse(raw, region=tenant_phone_region(self.tenant)) if raw else ""

    def clean_csv_file(self):
        upload = self.cleaned_data["csv_file"]
        if upload.size > MAX_CSV_BYTES:
            raise ValidationError(f"The file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB: split it.")
        return upload

    def clean(self):
        cleaned = super().clean()
        template, purpose, upload = cleaned.get("template"), cleaned.get("purpose"), cleaned.get("csv_file")
        if template and purpose and template.purpose != purpose:
            # A marketing text sent as "transactional" would skip consent checks: refuse it.
            self.add_error(
                "purpose",
                f"“{template.name}” is a {template.get_purpose_display().lower()} template: "
                "choose that purpose, or another template.",
            )
        if template and upload and not self.errors:
            self.upload = bulk_csv_read(
                content=upload.read(), body=template.body, region=tenant_phone_region(self.tenant)
            )
            for problem in self.upload.file_errors:
                self.add_error("csv_file", problem)
        return cleaned
