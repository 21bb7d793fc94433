"""The email CSV exports: the email log and the suppression list.

Columns are a contract with operators' scripts: never rename or reorder them. Rows stream from
`.values_list(...).iterator()` (constant memory); addresses go through `show`, masked for
support staff as on the pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.db.models import QuerySet

from tenants.exports import IsoUtc

from ..models import EmailMessage, EmailSuppression

CHUNK_SIZE = 2000
EMAIL_COLUMNS = (
    "id",
    "to",
    "category",
    "subject",
    "status",
    "error",
    "sg_message_id",
    "created_at",
    "sent_at",
    "updated_at",
)
SUPPRESSION_COLUMNS = ("email", "reason", "asm_group_id", "detail", "created_at")

Show = Callable[[str], str]


def email_rows(qs: QuerySet[EmailMessage], *, show: Show, show_text: Show = str) -> Iterator[tuple]:
    values = qs.values_list(
        "id", "to_email", "category", "subject", "status", "error", "sg_message_id",
        IsoUtc("created_at"), IsoUtc("sent_at"), IsoUtc("updated_at"),
    )  # fmt: skip
    for pk, to, category, subject, status, error, message_id, created, sent, updated in values.iterator(CHUNK_SIZE):
        yield (
            pk,
            show(to),
            category,
            show_text(subject),
            status,
            show_text(error),
            message_id,
            created,
            sent or "",
            updated,
        )


def suppression_rows(qs: QuerySet[EmailSuppression], *, show: Show, show_text: Show = str) -> Iterator[tuple]:
    values = qs.values_list("email", "reason", "asm_group_id", "detail", IsoUtc("created_at"))
    for email, reason, group, detail, created in values.iterator(CHUNK_SIZE):
        yield (show(email), reason, "" if group is None else group, show_text(detail), created)
