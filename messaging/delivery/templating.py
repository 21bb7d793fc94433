"""Message templates: `{{variable}}` placeholders, their validation, rendering, and the writes.

The syntax is deliberately tiny: `{{name}}` (spaces inside the braces allowed), names in
lower-case letters, digits and underscores, not starting with a digit. Every other brace is
an error rather than literal text, because in practice a lone `{` or `}` is a typo for a
placeholder (`{first_name}}`) and would otherwise reach thousands of phones as is; braces are
also GSM-7 extension characters that cost two septets each.

Rendering compiles the body once into literal parts and names, so rendering 100,000 rows costs
one `str.join` each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tenants.audit import AuditContext
from tenants.models import Tenant
from tenants.services import audit_record

from ..models import BulkSend, MessageTemplate
from .segments import sms_encoding, sms_length, sms_segments

VARIABLE_RE = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class ParsedTemplate:
    """A template body split into literal text and variable names, in order."""

    parts: tuple[str, ...]  # literal, name, literal, name, …, literal (always odd length)
    variables: tuple[str, ...]  # distinct names in order of first use
    errors: tuple[str, ...] = field(default=())

    def render(self, values: dict[str, str]) -> str:
        """The body with every placeholder replaced; a missing value raises KeyError."""
        parts = self.parts
        if len(parts) == 1:
            return parts[0]
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            out.append(values[parts[i]])
            out.append(parts[i + 1])
        return "".join(out)


def template_parse(body: str) -> ParsedTemplate:
    """Split `body` into literals and placeholders, collecting every syntax error with its position."""
    parts: list[str] = []
    variables: list[str] = []
    errors: list[str] = []
    literal: list[str] = []
    i, n = 0, len(body)
    while i < n:
        if body.startswith("{{", i):
            end = body.find("}}", i + 2)
            if end == -1:
                errors.append(f"“{{{{” at character {i + 1} is never closed with “}}}}”.")
                literal.append(body[i:])
                break
            inner = body[i + 2 : end]
            name = inner.strip()
            if "{" in inner or "}" in inner:
                errors.append(f"“{{{{{inner}}}}}” at character {i + 1}: braces cannot be nested.")
            elif not name:
                errors.append(f"Empty placeholder “{{{{{inner}}}}}” at character {i + 1}: put a variable name inside.")
            elif not VARIABLE_RE.fullmatch(name):
                errors.append(
                    f"“{{{{{inner}}}}}” at character {i + 1}: variable names use lower-case letters, digits and "
                    "underscores and do not start with a digit (e.g. {{first_name}})."
                )
            else:
                parts.append("".join(literal))
                parts.append(name)
                literal = []
                if name not in variables:
                    variables.append(name)
            i = end + 2
        elif body[i] in "{}":
            if body.startswith("}}", i):
                errors.append(f"“}}}}” at character {i + 1} closes nothing: placeholders are written {{{{name}}}}.")
                i += 2
                continue
            errors.append(f"Stray “{body[i]}” at character {i + 1}: placeholders are written {{{{name}}}}.")
            literal.append(body[i])
            i += 1
        else:
            literal.append(body[i])
            i += 1
    parts.append("".join(literal))
    return ParsedTemplate(parts=tuple(parts), variables=tuple(variables), errors=tuple(errors))


def template_validate(body: str) -> ParsedTemplate:
    """Parse `body` or raise ValidationError listing every problem."""
    parsed = template_parse(body)
    if parsed.errors:
        raise ValidationError(list(parsed.errors), code="invalid_placeholder")
    return parsed


def sms_stats(text: str) -> dict:
    """Encoding, length in its units and segment count of one SMS text (for previews)."""
    return {"encoding": sms_encoding(text), "length": sms_length(text), "segments": sms_segments(text)}


def template_sample_values(variables: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Stand-in values for a preview before any CSV is known: the variable's own name."""
    return {name: name.replace("_", " ").title() for name in variables}


# --- writes -----------------------------------------------------------------------------------


def _save(template: MessageTemplate) -> None:
    # Field validation here; the (tenant, name) uniqueness is the database's, so two admins
    # racing to the same name get a form error instead of a 500.
    template.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError as exc:
        raise ValidationError({"name": "This tenant already has a template with that name."}) from exc


@transaction.atomic
def template_create(*, tenant: Tenant, name: str, purpose: str, body: str, audit: AuditContext) -> MessageTemplate:
    """Create a tenant's template after validating its placeholders; audited."""
    template_validate(body)
    template = MessageTemplate(tenant=tenant, name=name, purpose=purpose, body=body)
    _save(template)
    audit_record(action="template.create", tenant=tenant, audit=audit, target=name, details={"id": template.pk})
    return template


@transaction.atomic
def template_update(*, template: MessageTemplate, changes: dict, audit: AuditContext) -> list[str]:
    """Apply changes (name, purpose, body); returns the names of the fields that changed; audited."""
    if "body" in changes:
        template_validate(changes["body"])
    changed = [k for k, v in changes.items() if getattr(template, k) != v]
    if changed:
        for k in changed:
            setattr(template, k, changes[k])
        _save(template)
        audit_record(
            action="template.update",
            tenant=template.tenant,
            audit=audit,
            target=template.name,
            details={"id": template.pk, "fields": changed},
        )
    return changed


@transaction.atomic
def template_delete(*, template: MessageTemplate, audit: AuditContext) -> None:
    """Delete a template no bulk send refers to (their history keeps the template); audited."""
    if BulkSend.objects.for_tenant(template.tenant).filter(template=template).exists():
        raise ValidationError(
            "“%(name)s” is used by a bulk send and is kept for its history; rename it instead.",
            code="in_use",
            params={"name": template.name},
        )
    audit_record(
        action="template.delete",
        tenant=template.tenant,
        audit=audit,
        target=template.name,
        details={"id": template.pk},
    )
    template.delete()


def template_list(*, tenant: Tenant):
    return MessageTemplate.objects.for_tenant(tenant).order_by("name")


def template_name_taken(*, tenant: Tenant, name: str, exclude_id: int | None = None) -> bool:
    """Whether another of the tenant's templates has this name (case aside): names pick a
    template in the bulk form, so two that differ only in case would be confused."""
    clash = MessageTemplate.objects.for_tenant(tenant).filter(name__iexact=name)
    if exclude_id is not None:
        clash = clash.exclude(pk=exclude_id)
    return clash.exists()


def template_stored_get(*, tenant: Tenant, template_id: int) -> MessageTemplate:
    """The template as stored now: a bound form copies its new values onto its instance, and an
    update must compare with the row, not with that copy."""
    return MessageTemplate.objects.for_tenant(tenant).get(pk=template_id)


__all__ = [
    "ParsedTemplate",
    "VARIABLE_RE",
    "sms_stats",
    "template_create",
    "template_delete",
    "template_list",
    "template_name_taken",
    "template_parse",
    "template_sample_values",
    "template_stored_get",
    "template_update",
    "template_validate",
]
