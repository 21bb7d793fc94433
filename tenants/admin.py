from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.hashers import is_password_usable
from django.contrib.auth.models import Group
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import models, transaction

from .http import audit_context
from .models import SUPPORT_GROUP, Alert, AuditEvent, Invitation, Membership, PhoneNumber, Tenant, WebhookRejection
from .services import (
    LastAdminError,
    audit_record,
    support_grant,
    support_revoke,
    tenant_membership_lock,
    tenants_left_without_admin,
)

User = get_user_model()

SECRET_FIELDS = ("auth_token", "api_key_secret", "webhook_signing_key")


class TenantAdminForm(forms.ModelForm):
    """Secrets are write-only here: the form never renders them; blank keeps the stored one.

    Every other field carries the value it was loaded with (a hidden `initial-<name>` input), so
    `changed_data` means "what the operator edited", not "what differs from the row now". The
    difference matters because credential rotation and suspension (tenants/lifecycle.py) update
    `api_key_sid` and `status` while a form may be open: compared with the fresh row, the form's
    stale values would look like edits and be written back.
    """

    auth_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current token.",
    )
    api_key_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current secret.",
    )
    webhook_signing_key = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), help_text="Leave blank to keep the current key."
    )

    class Meta:
        model = Tenant
        fields = [
            "name",
            "slug",
            "account_sid",
            "auth_token",
            "api_key_sid",
            "api_key_secret",
            "webhook_signing_key",
            "status",
            "timezone",
            "messaging_service_sid",
            "verify_service_sid",
            "keyword_replies",
            "help_text",
            "stop_text",
            "sender_email",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            self.initial[name] = ""
        for name, field in self.fields.items():
            # Secrets start blank by design, so only a typed value counts as a change.
            field.show_hidden_initial = name not in SECRET_FIELDS

    def clean(self):
        cleaned = super().clean()
        for name in SECRET_FIELDS:
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        if not cleaned.get("auth_token") and not self.instance.pk:
            self.add_error("auth_token", "A new tenant needs its subaccount's auth token.")
        return cleaned


def changed_model_fields(form) -> list[str]:
    """The model fields behind `form.changed_data` (form-only fields dropped)."""
    opts = form._meta.model._meta
    names = []
    for name in form.changed_data:
        try:
            field = opts.get_field(name)
        except FieldDoesNotExist:
            continue
        if field.concrete and not field.many_to_many:
            names.append(field.name)
    return names


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    """A tenant that has an active admin keeps one: the operator suspends or closes a tenant
    instead of leaving it with nobody who can manage it (as the service refuses it, LastAdminError)."""

    def clean(self):
        super().clean()
        tenant = self.instance
        if tenant.pk is None or any(form.errors for form in self.forms):
            return
        tenant_membership_lock(tenant)  # the admin's change view is one transaction
        had_admin = Membership.objects.filter(tenant=tenant, role=Membership.Role.ADMIN, user__is_active=True).exists()
        keeps_admin = any(
            form.cleaned_data.get("role") == Membership.Role.ADMIN
            and form.cleaned_data.get("user") is not None
            and form.cleaned_data["user"].is_active
            and not form.cleaned_data.get("DELETE")
            for form in self.forms
            if form.cleaned_data
        )
        if had_admin and not keeps_admin:
            raise ValidationError(str(LastAdminError(tenant)))


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipInlineFormSet
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantAdminForm
    list_display = ["name", "slug", "account_sid", "status", "keyword_replies", "created_at"]
    list_filter = ["status", "keyword_replies"]
    search_fields = ["name", "slug", "account_sid"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    #: Changed only through the operator pages, which act at Twilio too (suspend/reactivate/
    #: close, API key rotation): editing them here would leave the portal and Twilio disagreeing.
    LIFECYCLE_FIELDS = ("slug", "account_sid", "status", "api_key_sid")

    def get_readonly_fields(self, request, obj=None):
        return self.LIFECYCLE_FIELDS if obj is not None else ()

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if obj is None else {}

    def save_model(self, request, obj, form, change):
        """Write only what the operator changed, and audit it by field name (never values).

        Like the portal's settings save (tenants/services.py tenant_settings_update): a
        whole-row save from a form opened before a credential rotation would undo it.
        """
        fields = changed_model_fields(form)
        if not change:
            super().save_model(request, obj, form, change)
            audit_record(
                action="tenant.admin_create",
                tenant=obj,
                audit=audit_context(request),
                target=obj.slug,
                details={"fields": fields},
            )
            return
        if not fields:
            return
        obj.save(update_fields=[*fields, "updated_at"])
        audit_record(
            action="tenant.admin_change",
            tenant=obj,
            audit=audit_context(request),
            target=obj.slug,
            details={"fields": fields},
        )

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.model is not Membership:
            return
        # The same audit trail as the portal's members page (membership_set / membership_remove).
        events = [("added", m.user.get_username(), m.role) for m in formset.new_objects]
        loaded = {f.instance.pk: f.initial for f in formset.initial_forms}  # the rows as they were
        for membership, fields in formset.changed_objects:
            if "user" in fields:
                # Another person in the same row: the old one lost their role, the new one got it.
                before = loaded[membership.pk]
                old_user = User.objects.filter(pk=before["user"]).first()
                old_name = old_user.get_username() if old_user else f"user #{before['user']}"
                events.append(("removed", old_name, before["role"]))
                events.append(("added", membership.user.get_username(), membership.role))
            else:
                old_role = loaded[membership.pk]["role"]
                events.append(("changed", membership.user.get_username(), membership.role, old_role))
        events += [("removed", m.user.get_username(), m.role) for m in formset.deleted_objects]
        for outcome, username, role, *old in events:
            details = {"role": role, "via": "admin"}
            if old:
                details |= {"old_role": old[0], "new_role": role}
            audit_record(
                action=f"membership.{outcome}",
                tenant=form.instance,
                audit=audit_context(request),
                target=username,
                details=details,
            )


# --- Users and groups: Django's own admin, with access changes on the audit log -----------------

#: A user's own flags that give or take access, and the audit actions for setting and clearing
#: each. Staff alone opens /admin/ (with whatever permissions it is given), so it counts too.
ACCESS_FLAGS = (
    ("is_superuser", "superuser.granted", "superuser.revoked"),
    ("is_staff", "staff.granted", "staff.revoked"),
    ("is_active", "user.activated", "user.deactivated"),
)

admin.site.unregister(User)
admin.site.unregister(Group)


def _superusers_only(request) -> bool:
    """The Django admin is the platform operators' tool: superusers only. Django's default lets
    any active staff user in with whatever model permissions they hold, and a staff user who can
    change users can make himself superuser there."""
    return request.user.is_active and request.user.is_superuser


admin.site.has_permission = _superusers_only


def _codenames(permissions) -> list[str]:
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in permissions)


def _audit_set_change(request, *, target: str, before, after, added: str, removed: str, label) -> None:
    """One audit event per element gained and per element lost between two sets."""
    for action, items in ((added, after - before), (removed, before - after)):
        for item in sorted(items, key=label):
            audit_record(
                action=action, tenant=None, audit=audit_context(request), target=target, details={"what": label(item)}
            )


def last_admin_refusal(users, tenants: list[Tenant], doing: str) -> str:
    """Why `doing` (deleting, deactivating) `users` is refused: the tenants it would leave
    without an active admin, and the way out."""
    who = ", ".join(sorted(user.get_username() for user in users))
    names = ", ".join(f"“{tenant.name}”" for tenant in tenants)
    return (
        f"Not {doing} {who}: {names} would be left with no active admin. Make another member admin"
        " there first, or close the tenant if nobody is to manage it any more."
    )


class PortalUserChangeForm(UserChangeForm):
    def clean_is_active(self):
        """Deactivating a tenant's last active admin is refused, as removing them is."""
        active = self.cleaned_data.get("is_active")
        if self.instance.pk is not None and self.instance.is_active and not active:
            # Inside the change view's transaction: the tenants stay locked until the save.
            with transaction.atomic():
                orphaned = tenants_left_without_admin(users=[self.instance])
            if orphaned:
                raise ValidationError(last_admin_refusal([self.instance], orphaned, "deactivating"))
        return active


@admin.register(User)
class PortalUserAdmin(UserAdmin):
    """Django's user admin, but a change of access goes on the audit log (not only in Django's
    LogEntry), as one made by `create_portal_user` does: the flags above, support staff
    membership (through the same services as the command) and a password set here. A tenant's
    last active admin can be neither deleted nor deactivated here (the members rule)."""

    form = PortalUserChangeForm

    def get_deleted_objects(self, objs, request):
        """The delete confirmation (single and "delete selected") refuses, with the reason, when
        the users are some tenant's last active admins: Django then deletes nothing."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        users = list(objs)
        with transaction.atomic():
            orphaned = tenants_left_without_admin(users=users)
        if orphaned:
            message = last_admin_refusal(users, orphaned, "deleting")
            self.message_user(request, message, level="error")
            protected = [*protected, message]
        return deleted, counts, perms_needed, protected

    def _refuse_last_admins(self, users) -> None:
        """The confirmation checked; this holds under the tenants' locks up to the delete."""
        orphaned = tenants_left_without_admin(users=users)
        if orphaned:
            raise PermissionDenied(last_admin_refusal(users, orphaned, "deleting"))

    def save_model(self, request, obj, form, change):
        # Diffed against the stored row, locked (the admin saves in a transaction), rather than
        # the form's initial values: the audit says what this save changed, even from a stale form.
        if change:
            stored = User.objects.select_for_update().get(pk=obj.pk)
            before = {name: getattr(stored, name) for name, *_ in ACCESS_FLAGS}
        else:
            before = {name: User._meta.get_field(name).get_default() for name, *_ in ACCESS_FLAGS}
        super().save_model(request, obj, form, change)
        for name, granted, revoked in ACCESS_FLAGS:
            if getattr(obj, name) != before[name]:
                audit_record(
                    action=granted if getattr(obj, name) else revoked,
                    tenant=None,
                    audit=audit_context(request),
                    target=obj.get_username(),
                )

    def save_related(self, request, form, formsets, change):
        user = form.instance
        groups_before = set(user.groups.exclude(name=SUPPORT_GROUP)) if change else set()
        permissions_before = set(user.user_permissions.select_related("content_type")) if change else set()
        self._save_groups_and_support(request, form, formsets, change)
        # Other groups and direct permissions give access too: on the record as well.
        _audit_set_change(
            request,
            target=user.get_username(),
            before=groups_before,
            after=set(user.groups.exclude(name=SUPPORT_GROUP)),
            added="group.joined",
            removed="group.left",
            label=lambda group: group.name,
        )
        _audit_set_change(
            request,
            target=user.get_username(),
            before=permissions_before,
            after=set(user.user_permissions.select_related("content_type")),
            added="permission.granted",
            removed="permission.revoked",
            label=lambda p: f"{p.content_type.app_label}.{p.codename}",
        )

    @transaction.atomic
    def delete_model(self, request, obj):
        self._refuse_last_admins([obj])
        self._audit_deleted(request, [obj])
        super().delete_model(request, obj)

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        self._refuse_last_admins(list(queryset))
        self._audit_deleted(request, list(queryset))
        super().delete_queryset(request, queryset)

    def _audit_deleted(self, request, users) -> None:
        for user in users:
            audit_record(
                action="user.deleted",
                tenant=None,
                audit=audit_context(request),
                target=user.get_username(),
                details={
                    "superuser": user.is_superuser,
                    "staff": user.is_staff,
                    "groups": sorted(user.groups.values_list("name", flat=True)),
                    "memberships": sorted(user.memberships.values_list("tenant__slug", flat=True)),
                },
            )

    def _save_groups_and_support(self, request, form, formsets, change):
        groups = form.cleaned_data.get("groups")  # absent from the add form
        support = Group.objects.filter(name=SUPPORT_GROUP).first()
        if groups is None or support is None:
            super().save_related(request, form, formsets, change)
            return
        user = form.instance
        wanted = support in groups
        # Django saves the other groups; the support group is kept as stored and then changed by
        # support_grant / support_revoke, which record it.
        kept = [group for group in groups if group.pk != support.pk]
        if user.groups.filter(pk=support.pk).exists():
            kept.append(support)
        form.cleaned_data["groups"] = kept
        super().save_related(request, form, formsets, change)
        if wanted:
            support_grant(user=user, audit=audit_context(request))
        else:
            support_revoke(user=user, audit=audit_context(request))

    def user_change_password(self, request, id, form_url=""):
        # The password form saves in the view itself (no save_model): compare the stored hash.
        with transaction.atomic():
            user = self.get_object(request, unquote(id))
            response = super().user_change_password(request, id, form_url)
            if user is not None and request.method == "POST":
                password = User.objects.filter(pk=user.pk).values_list("password", flat=True).first()
                if password != user.password:
                    audit_record(
                        action="user.password_changed",
                        tenant=None,
                        audit=audit_context(request),
                        target=user.get_username(),
                        details={"usable": is_password_usable(password)},  # never the password
                    )
        return response


class GroupAdminForm(forms.ModelForm):
    def clean_name(self):
        name = self.cleaned_data["name"]
        if name == SUPPORT_GROUP and self.instance.pk is not None:
            raise ValidationError(
                "Renaming a group to this name would make all its members support staff at once, "
                "unaudited: add people to the support group on their user page instead."
            )
        return name


@admin.register(Group)
class PortalGroupAdmin(GroupAdmin):
    """Django's group admin edits a group's name and permissions, not its members. Support staff
    is a group found by name (tenants.models.is_support), so its name is fixed and it cannot be
    deleted here: renaming or deleting it would take support from every member, unaudited."""

    form = GroupAdminForm

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "name") if obj is not None and obj.name == SUPPORT_GROUP else readonly

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.name == SUPPORT_GROUP:
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request, queryset):
        # "Delete selected" skips has_delete_permission(obj): keep the support group here too.
        queryset = queryset.exclude(name=SUPPORT_GROUP)
        for group in queryset:
            audit_record(action="group.deleted", tenant=None, audit=audit_context(request), target=group.name)
        super().delete_queryset(request, queryset)

    def delete_model(self, request, obj):
        audit_record(action="group.deleted", tenant=None, audit=audit_context(request), target=obj.name)
        super().delete_model(request, obj)

    def save_related(self, request, form, formsets, change):
        group = form.instance
        before = set(group.permissions.select_related("content_type")) if change else set()
        super().save_related(request, form, formsets, change)
        # What a group may do is access for every member: on the record.
        _audit_set_change(
            request,
            target=group.name,
            before=before,
            after=set(group.permissions.select_related("content_type")),
            added="group.permission_granted",
            removed="group.permission_revoked",
            label=lambda p: f"{p.content_type.app_label}.{p.codename}",
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the platform (Twilio syncs, monitoring, the audit log): view only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TenantOwnedAdmin(ReadOnlyAdmin):
    """The default manager of tenant-owned models refuses unscoped reads (tenants/scoping.py);
    the operator's admin crosses tenants on purpose, so it names the unscoped manager."""

    list_select_related = ["tenant"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request):
        qs = self.model.all_tenants.get_queryset()
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs


def status_filter(field: str, unset: tuple[str, str], set_: tuple[str, str]) -> type[admin.SimpleListFilter]:
    """A "status" list filter on whether the timestamp `field` is set (e.g. released, cleared)."""

    class StatusFilter(admin.SimpleListFilter):
        title = "status"
        parameter_name = "status"

        def lookups(self, request, model_admin):
            return [unset, set_]

        def queryset(self, request, queryset):
            if self.value() in (unset[0], set_[0]):
                return queryset.filter(**{f"{field}__isnull": self.value() == unset[0]})
            return queryset

    return StatusFilter


@admin.register(PhoneNumber)
class PhoneNumberAdmin(TenantOwnedAdmin):
    list_display = ["phone_number", "tenant", "friendly_name", "sid", "sms", "mms", "voice", "synced_at", "released_at"]
    list_filter = [
        "tenant",
        status_filter("released_at", ("active", "Active"), ("released", "Released")),
        "sms",
        "mms",
        "voice",
    ]
    search_fields = ["phone_number", "sid", "friendly_name", "tenant__name", "tenant__slug"]


@admin.register(Alert)
class AlertAdmin(TenantOwnedAdmin):
    list_display = ["raised_at", "tenant", "kind", "cleared_at", "summary"]
    list_filter = ["tenant", status_filter("cleared_at", ("open", "Open"), ("cleared", "Cleared")), "kind"]
    search_fields = ["tenant__name", "tenant__slug"]
    date_hierarchy = "raised_at"


@admin.register(Invitation)
class InvitationAdmin(TenantOwnedAdmin):
    """The portal's member invitations, for the record: the token's hash is of no use to anyone."""

    list_display = ["email", "tenant", "role", "created_by", "created_at", "expires_at", "accepted_by", "revoked_at"]
    list_filter = ["tenant", "role"]
    search_fields = ["email", "tenant__name", "tenant__slug"]
    exclude = ["token_hash"]
    date_hierarchy = "created_at"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "tenant", "action", "target", "ip_address"]
    list_filter = ["action"]
    search_fields = ["actor_label", "action", "target", "reason"]


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(admin.ModelAdmin):
    list_display = ["day", "tenant", "reason", "count", "last_seen_at"]
    list_filter = ["reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
