"""Re-encrypt every stored secret under the first FIELD_ENCRYPTION_KEY.

Rotation: put the new key first in FIELD_ENCRYPTION_KEY (keep the old one after it), run this
command, then remove the old key.
"""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from tenants.crypto import EncryptedTextField, rotate


class Command(BaseCommand):
    help = "Re-encrypt all encrypted fields with the newest FIELD_ENCRYPTION_KEY (the first listed)."

    def handle(self, *args, **opts):
        total = 0
        qn = connection.ops.quote_name
        with transaction.atomic(), connection.cursor() as cursor:
            for model in apps.get_models():
                table, pk = model._meta.db_table, model._meta.pk.column
                for field in model._meta.concrete_fields:
                    if not isinstance(field, EncryptedTextField):
                        continue
                    # Raw column values: the model layer would hand back decrypted Secrets.
                    cursor.execute(
                        f"SELECT {qn(pk)}, {qn(field.column)} FROM {qn(table)} WHERE {qn(field.column)} <> ''"
                    )
                    for row_pk, token in cursor.fetchall():
                        cursor.execute(
                            f"UPDATE {qn(table)} SET {qn(field.column)} = %s WHERE {qn(pk)} = %s",
                            [rotate(token), row_pk],
                        )
                        total += 1
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {total} secret value(s) under the newest key."))
