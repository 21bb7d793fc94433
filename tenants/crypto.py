"""Secrets at rest: Fernet encryption for model fields, and a value type that never prints.

`FIELD_ENCRYPTION_KEY` holds one or more Fernet keys (comma-separated). The first encrypts;
every key decrypts, so rotation is: prepend a new key, run `manage.py rotate_encryption_keys`,
then remove the old key.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class Secret:
    """A decrypted secret. `str()`, `repr()` and templates only ever see a mask.

    Code that really needs the value (the Twilio client, the signature validator) calls
    `reveal()`, which makes every use of the plaintext easy to find.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def masked(self) -> str:
        if not self._value:
            return ""
        return "••••" + self._value[-4:] if len(self._value) >= 12 else "••••"

    def __str__(self) -> str:
        return self.masked

    __repr__ = __str__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never let a secret be pickled into a cache or a task payload
        raise TypeError("Secret values cannot be pickled")


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is empty")
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64 bytes), comma-separated"
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        # Say which problem it is, never what the value was.
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with FIELD_ENCRYPTION_KEY (wrong or removed key)"
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt a stored token under the first (newest) key."""
    return fernet().rotate(token.encode()).decode()


class _SecretDescriptor:
    """Wraps whatever is assigned in `Secret`, so a freshly set token is masked too."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        return instance.__dict__.get(self.name, Secret(""))

    def __set__(self, instance, value) -> None:
        if not isinstance(value, Secret):
            value = Secret("" if value is None else str(value))
        instance.__dict__[self.name] = value


class EncryptedTextField(models.TextField):
    """A TextField whose database column holds only a Fernet token; Python sees `Secret`."""

    description = "Encrypted text (Fernet)"

    def contribute_to_class(self, cls, name, private_only=False):
        super().contribute_to_class(cls, name, private_only)
        setattr(cls, self.attname, _SecretDescriptor(self.attname))

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return Secret("")
        return Secret(decrypt(value))

    def to_python(self, value):
        if isinstance(value, Secret):
            return value
        if value is None:
            return Secret("")
        return Secret(str(value))

    def get_prep_value(self, value):
        if isinstance(value, Secret):
            value = value.reveal()
        if value in (None, ""):
            return ""
        return encrypt(str(value))

    def value_to_string(self, obj):  # dumpdata/serializers: never the plaintext
        return self.get_prep_value(self.value_from_object(obj))
