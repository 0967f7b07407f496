"""Tenancy (App, memberships, keys) and identity (profiles, devices, bindings, aliases, merges)."""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


def hash_server_key(raw_key: str) -> str:
    # Server keys are 32 random bytes: a plain SHA-256 is enough (no dictionary to guess from)
    # and lets authentication find the app with one indexed lookup.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class App(models.Model):
    """One customer app (a PushApp workspace); every other row belongs to exactly one."""

    name = models.CharField(max_length=200)
    write_key = models.CharField(max_length=64, unique=True)
    server_key_hash = models.CharField(max_length=64, unique=True)
    server_key_prefix = models.CharField(
        max_length=16, help_text="The first characters of the server key, to recognise it."
    )
    session_timeout_seconds = models.PositiveIntegerField(
        default=30 * 60, help_text="Inactivity after which the next event starts a new session."
    )
    keys_rotated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AppMembership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        EDITOR = "editor", "Editor"
        ADMIN = "admin", "Admin"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="app_memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "user"], name="appmembership_app_user_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.app} ({self.role})"


class Profile(models.Model):
    """A person: a guest (anonymous device) or identified by the app's user id.

    A tombstone is any profile with ``merged_into`` set; lookups follow it (one hop: merges
    re-point older tombstones at the new target).
    """

    class Kind(models.TextChoices):
        GUEST = "guest", "Guest"
        IDENTIFIED = "identified", "Identified"

    # Indexed by (app, -last_seen_at).
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="profiles", db_index=False)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user_id = models.CharField(max_length=255, null=True, blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.GUEST)
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tombstones",
        db_index=False,  # partial index below: only tombstones
    )
    attributes = models.JSONField(default=dict, blank=True)
    attribute_times = models.JSONField(
        default=dict, blank=True, help_text="When each attribute key was last set (ISO 8601)."
    )
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    event_count = models.BigIntegerField(default=0)
    session_count = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["app", "user_id"],
                condition=Q(user_id__isnull=False),
                name="profile_app_user_id_uniq",
            ),
            models.CheckConstraint(
                condition=Q(kind="guest", user_id__isnull=True)
                | Q(kind="identified", user_id__isnull=False),
                name="profile_kind_matches_user_id",
            ),
        ]
        indexes = [
            models.Index(fields=["app", "-last_seen_at"], name="profile_app_last_seen"),
            # The admin list across all apps (superusers), newest first.
            models.Index(fields=["-last_seen_at"], name="profile_last_seen"),
            # Live profiles (nearly all) stay out of it, so their updates skip it.
            models.Index(
                fields=["merged_into"],
                condition=Q(merged_into__isnull=False),
                name="profile_tombstones",
            ),
        ]
        # Attribute filters use indexes created outside the model state (PostgreSQL only):
        # a GIN (jsonb_path_ops) index on ``attributes`` and expression indexes per configured
        # number/date field (profiles/services.py: attribute_indexes_sync).
        permissions = [("view_pii", "Can see PII attribute values")]

    def __str__(self) -> str:
        return self.user_id or f"Guest {str(self.public_id)[:8]}"

    @property
    def is_tombstone(self) -> bool:
        return self.merged_into_id is not None


class Device(models.Model):
    """An app install. Keyed per app by the SDK's anonymous id (Segment) or ``device_id`` (native)."""

    # Indexed by the unique (app, device_id).
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="devices", db_index=False)
    device_id = models.CharField(max_length=255)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="devices")
    binding_changed_at = models.DateTimeField(
        help_text="Timestamp of the message that last (re-)bound this device to its profile."
    )
    platform = models.CharField(max_length=32, blank=True, default="")
    os_name = models.CharField(max_length=64, blank=True, default="")
    os_version = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=128, blank=True, default="")
    manufacturer = models.CharField(max_length=128, blank=True, default="")
    app_version = models.CharField(max_length=64, blank=True, default="")
    app_build = models.CharField(max_length=64, blank=True, default="")
    sdk_name = models.CharField(max_length=64, blank=True, default="")
    sdk_version = models.CharField(max_length=64, blank=True, default="")
    locale = models.CharField(max_length=35, blank=True, default="")
    timezone = models.CharField(max_length=64, blank=True, default="")
    push_token = models.CharField(max_length=512, null=True, blank=True)
    push_opt_in = models.BooleanField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "device_id"], name="device_app_device_id_uniq"),
            # Rule 9: a push token belongs to one device of an app at a time.
            models.UniqueConstraint(
                fields=["app", "push_token"],
                condition=Q(push_token__isnull=False),
                name="device_app_push_token_uniq",
            ),
        ]

    def __str__(self) -> str:
        return self.device_id


class DeviceBinding(models.Model):
    """History of which profile a device was bound to, from when (message time)."""

    class Reason(models.TextChoices):
        FIRST_SEEN = "first_seen", "First seen"
        IDENTIFY = "identify", "Identify"
        LOGIN = "login", "Login (another user)"
        LOGOUT = "logout", "Logout / reset"
        MERGE = "merge", "Merge"
        UNDO = "undo", "Undo of a merge"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="bindings")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="bindings")
    bound_at = models.DateTimeField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["device", "bound_at"], name="binding_device_bound_at")]

    def __str__(self) -> str:
        return f"{self.device_id} -> {self.profile_id} from {self.bound_at:%Y-%m-%d %H:%M:%S}"


class ProfileField(models.Model):
    """A profile field an app configures: shown first on every profile, typed and validated."""

    class Type(models.TextChoices):
        STRING = "string", "String"
        NUMBER = "number", "Number"
        BOOLEAN = "boolean", "Boolean"
        DATETIME = "datetime", "Date and time"
        DATE = "date", "Date"
        STRING_LIST = "string_list", "List of strings"
        OBJECT = "object", "Object"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="fields")
    key = models.CharField(max_length=128)
    label = models.CharField(max_length=200)
    field_type = models.CharField(max_length=16, choices=Type.choices, default=Type.STRING)
    pii = models.BooleanField(default=False)
    set_once = models.BooleanField(default=False)
    searchable = models.BooleanField(default=False)
    description = models.TextField(blank=True, default="")
    display_order = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["app", "display_order", "key"]
        constraints = [
            models.UniqueConstraint(fields=["app", "key"], name="profilefield_app_key_uniq")
        ]

    def __str__(self) -> str:
        return self.key


class ProfileAlias(models.Model):
    """An extra id that routes to a profile; shares the user-id namespace of its app."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    alias = models.CharField(max_length=255)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="aliases")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "alias"], name="profilealias_app_alias_uniq")
        ]
        verbose_name_plural = "profile aliases"

    def __str__(self) -> str:
        return self.alias


class ProfileMerge(models.Model):
    """The merge record (transactional outbox): written with the re-binding that causes it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        UNDONE = "undone", "Undone"

    class Reason(models.TextChoices):
        IDENTIFY = "identify", "Identify (guest logged in)"
        ALIAS = "alias", "Alias call"
        STAFF = "staff", "Staff merge"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="merges_out")
    target = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="merges_in")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=10, choices=Reason.choices)
    forced = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_snapshot = models.JSONField(default=dict, blank=True)
    target_prior = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    events_moved = models.BigIntegerField(
        default=0, help_text="Events moved so far, all attempts (each batch adds its own)."
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["status", "created_at"],
                condition=Q(status__in=["pending", "running"]),
                name="merge_open_status",
            )
        ]

    def __str__(self) -> str:
        return f"merge {self.source_id} -> {self.target_id} ({self.status})"


class BackgroundJob(models.Model):
    """A long piece of work run by Celery (re-sync, export, ...): the truth about its progress
    lives here, so a page can show pending, running, done or failed with counts."""

    class Kind(models.TextChoices):
        RESYNC = "resync", "Re-sync"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    app = models.ForeignKey(App, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    params = models.JSONField(default=dict, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"


def suppression_hash(value: str) -> str:
    """How a suppressed id is stored: erased ids are not kept in clear, only matched."""
    return hashlib.sha256(value.encode()).hexdigest()


class QuarantinedAttribute(models.Model):
    """An attribute value that was refused (wrong type, over a limit): kept, never dropped
    silently, so staff can see what a client sent and fix the integration or the field."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.CASCADE, related_name="quarantine"
    )
    key = models.TextField()
    operation = models.CharField(max_length=16, default="set")
    value = models.JSONField(null=True, blank=True)
    code = models.CharField(max_length=32)
    error = models.TextField()
    source = models.CharField(max_length=32, help_text="Where the value came from.")
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["app", "-received_at"], name="quarantine_app_received"),
            models.Index(fields=["profile"], name="quarantine_profile"),
        ]
        verbose_name = "quarantined attribute value"

    def __str__(self) -> str:
        return f"{self.key} ({self.code})"


class DiscoveredField(models.Model):
    """An attribute key the app sends that is not a configured field: a custom attribute the
    team can promote to a configured field."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="discovered_fields")
    key = models.CharField(max_length=128)
    sample_type = models.CharField(max_length=16, blank=True, default="")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    seen_count = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["app", "key"]
        constraints = [
            models.UniqueConstraint(fields=["app", "key"], name="discoveredfield_app_key_uniq")
        ]

    def __str__(self) -> str:
        return self.key


class Suppression(models.Model):
    """An erased person's id: data naming it is refused until staff lift the suppression, so
    late SDK data cannot re-create the person. Only a hash of the id is kept."""

    class Kind(models.TextChoices):
        USER_ID = "user_id", "User id"
        ALIAS = "alias", "Alias"
        DEVICE_ID = "device_id", "Device id"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    value_hash = models.CharField(max_length=64)
    erasure = models.ForeignKey(
        "ProfileErasure",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="suppressions",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["app", "kind", "value_hash"], name="suppression_app_kind_value_uniq"
            )
        ]
        indexes = [models.Index(fields=["app", "value_hash"], name="suppression_app_hash")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.value_hash[:12]}…"


class ProfileErasure(models.Model):
    """The audit row of an erasure: what was deleted (counts only, nothing personal)."""

    class Via(models.TextChoices):
        API = "api", "Server API"
        ADMIN = "admin", "Admin"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    public_id = models.UUIDField(help_text="The erased profile's public id.")
    via = models.CharField(max_length=8, choices=Via.choices, default=Via.API)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    counts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"erasure of {self.public_id}"


class StaffAction(models.Model):
    """The staff audit log: who did what to which objects, when, and with what result.
    Written by the admin's actions in the same transaction as their effect; never edited."""

    class Result(models.TextChoices):
        OK = "ok", "Done"
        REFUSED = "refused", "Refused"
        FAILED = "failed", "Failed"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    app = models.ForeignKey(App, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=32)
    object_type = models.CharField(max_length=32)
    object_ids = models.JSONField(default=list)
    object_repr = models.CharField(max_length=300, blank=True, default="")
    result = models.CharField(max_length=8, choices=Result.choices)
    message = models.TextField(blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "staff audit entry"
        verbose_name_plural = "staff audit log"

    def __str__(self) -> str:
        return f"{self.username} {self.action} {self.object_repr} ({self.result})"
