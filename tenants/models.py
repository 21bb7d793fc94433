"""Tenants (one Twilio subaccount each), the people who run them, and what they did."""

from __future__ import annotations

import functools
import zoneinfo
from typing import ClassVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.crypto import salted_hmac

from .crypto import EncryptedTextField
from .scoping import TenantOwned

account_sid_validator = RegexValidator(r"^AC[0-9a-f]{32}$", "An Account SID is AC followed by 32 hex digits.")
api_key_sid_validator = RegexValidator(r"^SK[0-9a-f]{32}$", "An API key SID is SK followed by 32 hex digits.")
messaging_service_sid_validator = RegexValidator(
    r"^MG[0-9a-f]{32}$", "A Messaging Service SID is MG followed by 32 hex digits."
)
verify_service_sid_validator = RegexValidator(
    r"^VA[0-9a-f]{32}$", "A Verify Service SID is VA followed by 32 hex digits."
)

TIMEZONE_CHOICES = sorted((tz, tz) for tz in zoneinfo.available_timezones())

DEFAULT_HELP_TEXT = (
    "{brand}: account alerts and codes. Help: {contact}. Msg frequency varies. "
    "Msg & data rates may apply. Reply STOP to cancel."
)
DEFAULT_STOP_TEXT = "{brand}: You are unsubscribed and will receive no further messages. Reply START to resubscribe."
DEFAULT_START_TEXT = (
    "{brand}: You are resubscribed. Msg frequency varies. Msg & data rates may apply. "
    "Reply HELP for help, STOP to cancel."
)


class AppendOnlyModel:
    """Evidence rows (audit log, suppression hashes, the apps' ledgers): saved once, never edited
    or deleted through a model instance; a correction is a new row.

    A plain mixin, listed before the model base (``class X(AppendOnlyModel, TenantOwned)``) so its
    `save`/`delete` run first. Queryset `.update()` bypasses it on purpose: GDPR erasure's
    pseudonymisation is the one sanctioned rewrite (see `tenants.retention`).
    """

    #: How the error names the rows, e.g. "Audit events"; by default "<ModelName> rows".
    append_only_label: ClassVar[str] = ""

    @classmethod
    def _append_only_error(cls) -> ValueError:
        return ValueError(f"{cls.append_only_label or f'{cls.__name__} rows'} are append-only")

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise self._append_only_error()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise self._append_only_error()


class _KeepUnknown(dict):
    """format_map helper: an admin's stray {placeholder} stays as typed instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class TenantQuerySet(models.QuerySet):
    def visible_to(self, user) -> TenantQuerySet:
        """Tenants a user may open in the portal: members see theirs, staff and support see all."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser or is_support(user):
            return self
        return self.filter(memberships__user=user).distinct()


class Tenant(models.Model):
    """A customer of the platform, backed by its own Twilio subaccount."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        CLOSED = "closed", "Closed"

    class KeywordReplies(models.TextChoices):
        TWILIO = "twilio", "Twilio answers STOP/START/HELP (portal records them)"
        PORTAL = "portal", "The portal answers (Advanced Opt-Out sends no replies)"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=50, unique=True)
    account_sid = models.CharField("Twilio Account SID", max_length=34, unique=True, validators=[account_sid_validator])
    auth_token = EncryptedTextField("auth token", blank=True, default="")
    api_key_sid = models.CharField(
        "API key SID", max_length=34, blank=True, default="", validators=[api_key_sid_validator]
    )
    api_key_secret = EncryptedTextField("API key secret", blank=True, default="")
    webhook_signing_key = EncryptedTextField(
        "webhook signing key",
        blank=True,
        default="",
        help_text="Shared key for HMAC-SHA256 webhook signatures, where configured at Twilio.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    timezone = models.CharField(max_length=64, choices=TIMEZONE_CHOICES, default="America/New_York")
    messaging_service_sid = models.CharField(
        "Messaging Service SID",
        max_length=34,
        blank=True,
        default="",
        validators=[messaging_service_sid_validator],
    )
    verify_service_sid = models.CharField(
        "Verify Service SID", max_length=34, blank=True, default="", validators=[verify_service_sid_validator]
    )
    help_text = models.TextField("HELP reply", blank=True, default="")
    stop_text = models.TextField("STOP confirmation", blank=True, default="")
    start_text = models.TextField("START confirmation", blank=True, default="")
    marketing_disclosure = models.TextField(
        "marketing consent disclosure",
        blank=True,
        default="",
        help_text="When set, the START confirmation offers marketing messages with this exact text; a YES "
        "reply records marketing consent referencing it.",
    )
    keyword_replies = models.CharField(
        "who answers keywords", max_length=10, choices=KeywordReplies.choices, default=KeywordReplies.TWILIO
    )
    sender_email = models.EmailField(blank=True, default="")
    # Credential rotation (tenants/lifecycle.py). Both are set only while a rotation is under
    # way: the secondary auth token between "create secondary" and "promote" (webhooks signed
    # with it validate too), the pending API key between its creation and its verification.
    secondary_auth_token = EncryptedTextField("secondary auth token", blank=True, default="")
    pending_api_key_sid = models.CharField(
        "pending API key SID", max_length=34, blank=True, default="", validators=[api_key_sid_validator]
    )
    pending_api_key_secret = EncryptedTextField("pending API key secret", blank=True, default="")
    # Retention (tenants/retention.py): message bodies and media go after `retention_days`;
    # metadata and consent/opt-out evidence stay.
    retention_days = models.PositiveIntegerField(
        default=400,
        validators=[MinValueValidator(1)],
        help_text="Message bodies and media URLs older than this are purged (metadata is kept).",
    )
    legal_hold = models.BooleanField(default=False, help_text="While set, nothing of this tenant is purged.")
    redact_at_twilio = models.BooleanField(
        "redact at Twilio",
        default=False,
        help_text="Also redact purged bodies in Twilio's message log (POST Messages/{sid} Body='').",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(account_sid__regex=r"^AC[0-9a-f]{32}$"), name="tenant_account_sid_format"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "suspended", "closed"]), name="tenant_status_valid"
            ),
            models.CheckConstraint(condition=Q(retention_days__gte=1), name="tenant_retention_days_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def can_send(self) -> bool:
        return self.status == self.Status.ACTIVE

    def keyword_reply(self, kind: str) -> str:
        """The tenant's HELP/STOP/START reply, defaults filled in with its brand and contact."""
        template = {
            "help": self.help_text or DEFAULT_HELP_TEXT,
            "opt_out": self.stop_text or DEFAULT_STOP_TEXT,
            "opt_in": self.start_text or DEFAULT_START_TEXT,
        }[kind]
        values = {"brand": self.name, "contact": self.sender_email or "reply HELP"}
        return template.format_map(_KeepUnknown(values))

    def signing_tokens(self) -> list[str]:
        """Auth tokens a webhook signature may have been made with: the primary, and during an
        auth token rotation the secondary too (Twilio switches to it the moment it is promoted,
        possibly before the portal has stored the promotion)."""
        tokens = [self.auth_token.reveal(), self.secondary_auth_token.reveal()]
        return [t for i, t in enumerate(tokens) if t and t not in tokens[:i]]


class Membership(models.Model):
    """A user's role in one tenant. A user may belong to several tenants."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]

    def __str__(self) -> str:
        return f"{self.user} — {self.role} of {self.tenant}"


class Invitation(TenantOwned):
    """A one-time, expiring link that lets whoever holds it join the tenant with `role`.

    Members are added this way rather than by username, so a tenant admin can neither attach an
    existing platform account (the operator, support staff) nor learn which accounts exist. Only
    a keyed hash of the token is stored: the raw link is shown to the admin once and never
    again, and a copy of the database does not hand out memberships.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"
        ACCEPTED = "accepted", "Accepted"

    #: Separates these hashes from every other use of SECRET_KEY (sessions, password resets).
    TOKEN_KEY_SALT = "tenants.Invitation.token"

    email = models.EmailField(help_text="Whom the admin invited; the link works for whoever holds it.")
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True, help_text="HMAC-SHA256 of the token (hex).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(role__in=["admin", "viewer"]), name="invitation_role_valid"),
            models.CheckConstraint(
                condition=Q(accepted_at__isnull=True) | Q(revoked_at__isnull=True),
                name="invitation_not_accepted_and_revoked",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} as {self.role} of tenant {self.tenant_id}"

    @classmethod
    def token_hash_for(cls, token: str, *, secret: str | None = None) -> str:
        """The stored form of `token`: HMAC-SHA256 keyed with SECRET_KEY (or `secret`)."""
        return salted_hmac(cls.TOKEN_KEY_SALT, token, secret=secret, algorithm="sha256").hexdigest()

    @classmethod
    def token_hashes_for(cls, token: str) -> list[str]:
        """The hashes `token` may be stored under: SECRET_KEY's, then each of
        SECRET_KEY_FALLBACKS', so a key rotation does not void the links already handed out."""
        keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
        return [cls.token_hash_for(token, secret=key) for key in keys]

    def state_at(self, now) -> str:
        """Pending, or why the link no longer works (used and revoked outrank expired)."""
        if self.accepted_at is not None:
            return self.State.ACCEPTED
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at <= now:
            return self.State.EXPIRED
        return self.State.PENDING


SUPPORT_GROUP = "Support staff"


def is_support(user) -> bool:
    """Support staff read every tenant's logs, read-only and with numbers masked."""
    if not user.is_authenticated:
        return False
    cached = getattr(user, "_is_support", None)
    if cached is None:
        cached = user.groups.filter(name=SUPPORT_GROUP).exists()
        user._is_support = cached
    return cached


@functools.cache
def is_support_sql() -> str:
    """`is_support` as an SQL condition with two placeholders (the user's id, then
    `SUPPORT_GROUP`), for a query that asks it along with other things (the second factor's
    check on every page); `is_support_known` then records the answer as `is_support` would."""
    links = get_user_model().groups.through._meta.db_table
    groups = Group._meta.db_table
    return (
        f"EXISTS (SELECT 1 FROM {links} INNER JOIN {groups} ON {groups}.id = {links}.group_id "
        f"WHERE {links}.user_id = %s AND {groups}.name = %s)"
    )


def is_support_known(user, value: bool) -> None:
    user._is_support = bool(value)


class AuditEvent(AppendOnlyModel, models.Model):
    """Append-only record of an admin action or a support-staff privileged read."""

    append_only_label = "Audit events"

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True, default="", help_text="Kept if the user is deleted.")
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target}"


class WebhookRejection(models.Model):
    """Count of rejected webhooks per tenant (null: unknown AccountSid), reason and day."""

    class Reason(models.TextChoices):
        MISSING_ACCOUNT_SID = "missing_account_sid", "Missing AccountSid"
        UNKNOWN_ACCOUNT_SID = "unknown_account_sid", "Unknown AccountSid"
        MISSING_SIGNATURE = "missing_signature", "Missing signature"
        INVALID_SIGNATURE = "invalid_signature", "Invalid signature"

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_rejections"
    )
    reason = models.CharField(max_length=32, choices=Reason.choices)
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "reason", "day"], name="webhook_rejection_unique_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.tenant or 'unknown'} {self.reason}: {self.count}"


class Alert(TenantOwned):
    """A monitoring alert about one tenant, open until the condition recovers.

    At most one open alert per (tenant, kind) — a database constraint, so the five-minute
    check (and two of them racing) can never raise or email the same alert twice.
    """

    class Kind(models.TextChoices):
        FAILURE_RATE = "failure_rate", "Delivery failure rate"
        SIGNATURE_FAILURES = "signature_failures", "Webhook signature failures"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    raised_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="The numbers that raised (and cleared) it.")

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind"], condition=Q(cleared_at__isnull=True), name="alert_one_open_per_kind"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["failure_rate", "signature_failures"]), name="alert_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        state = "open" if self.cleared_at is None else "cleared"
        return f"{self.tenant_id}: {self.get_kind_display()} ({state})"

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None

    @property
    def summary(self) -> str:
        """One sentence for the banner and the emails, from the numbers that raised it."""
        d = self.details or {}
        if self.kind == self.Kind.FAILURE_RATE:
            return (
                f"{d.get('failed', '?')} of {d.get('finished', '?')} outbound messages failed or were undelivered "
                f"in the last {d.get('window_minutes', 15)} minutes ({d.get('rate', 0):.0%})."
            )
        return (
            f"{d.get('today', '?')} webhooks with an invalid Twilio signature today "
            f"(previous 7-day average {d.get('baseline_average', 0):.1f} a day)."
        )


class SuppressionKey(models.Model):
    """The tenant's secret key for hashing erased phone numbers (HMAC-SHA256).

    Random per tenant and stored encrypted under FIELD_ENCRYPTION_KEY, rather than derived from
    SECRET_KEY or FIELD_ENCRYPTION_KEY: both of those are meant to be rotated, and an erased
    number can never be re-hashed (it is no longer stored anywhere), so a derived key would
    silently lift every suppression on the next rotation. `rotate_encryption_keys` re-encrypts
    this row like any other secret. Per tenant, so one person's hashes can't be linked across
    tenants. Never deleted.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.PROTECT, related_name="+")
    key = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "suppression key"

    def __str__(self) -> str:
        return f"Suppression key of tenant {self.tenant_id}"


class SuppressionHash(AppendOnlyModel, TenantOwned):
    """A number erased under GDPR, kept only as a keyed hash so it is never messaged again.

    `messaging.ledgers.reachability` checks it before every send. Append-only.
    """

    append_only_label = "Suppression hashes"

    phone_hash = models.CharField(max_length=64, help_text="HMAC-SHA256 of the E.164 number (hex).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "phone_hash"], name="suppression_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"suppressed {self.phone_hash[:16]}"


phone_number_sid_validator = RegexValidator(r"^PN[0-9a-f]{32}$", "A phone number SID is PN followed by 32 hex digits.")


class PhoneNumber(TenantOwned):
    """A number of the tenant's Twilio subaccount, as last synced (tenants/numbers.py).

    Twilio is the source of truth; this row is a snapshot for listing, filtering and drift
    checks. A number released at Twilio (or gone from the account) keeps its row with
    `released_at` set, so old messages still name a known number.
    """

    sid = models.CharField("SID", max_length=34, unique=True, validators=[phone_number_sid_validator])
    phone_number = models.CharField("number", max_length=20, help_text="E.164.")
    friendly_name = models.CharField(max_length=64, blank=True, default="")
    sms = models.BooleanField("SMS", default=False)
    mms = models.BooleanField("MMS", default=False)
    voice = models.BooleanField(default=False)
    sms_url = models.URLField("SMS URL", max_length=500, blank=True, default="")
    sms_method = models.CharField("SMS method", max_length=4, blank=True, default="POST")
    voice_url = models.URLField("voice URL", max_length=500, blank=True, default="")
    voice_method = models.CharField(max_length=4, blank=True, default="POST")
    status_callback = models.URLField(max_length=500, blank=True, default="")
    messaging_service_sid = models.CharField("Messaging Service SID", max_length=34, blank=True, default="")
    service_uses_own_inbound = models.BooleanField(
        "service overrides inbound",
        default=False,
        help_text="In a Messaging Service whose own inbound settings win over the number's SMS URL "
        "(use_inbound_webhook_on_number is false).",
    )
    service_inbound_url = models.URLField("service inbound URL", max_length=500, blank=True, default="")
    synced_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "phone number"
        ordering = ["phone_number"]
        indexes = [models.Index(fields=["tenant", "phone_number"])]
        constraints = [
            models.CheckConstraint(condition=Q(sid__regex=r"^PN[0-9a-f]{32}$"), name="phone_number_sid_format"),
        ]

    def __str__(self) -> str:
        return self.phone_number

    @property
    def is_released(self) -> bool:
        return self.released_at is not None

    @property
    def inbound_url(self) -> str:
        """The URL Twilio actually posts inbound SMS to for this number."""
        return self.service_inbound_url if self.service_uses_own_inbound else self.sms_url
