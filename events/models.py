"""The event log: what users do. Append-mostly; merges re-point ``profile`` in batches."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Event(models.Model):
    class Type(models.TextChoices):
        TRACK = "track", "Track"
        SCREEN = "screen", "Screen"
        PAGE = "page", "Page"
        GROUP = "group", "Group"
        IDENTIFY = "identify", "Identify"
        ALIAS = "alias", "Alias"

    class Source(models.TextChoices):
        SDK = "sdk", "SDK (write key)"
        SERVER = "server", "Server (server key)"

    # Indexed by the unique (app, message_id) below; a separate index would cost every insert.
    app = models.ForeignKey(
        "profiles.App", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # Indexed by the (profile, timestamp) timeline index below.
    profile = models.ForeignKey(
        "profiles.Profile", on_delete=models.CASCADE, related_name="events", db_index=False
    )
    # The profile this event was first recorded on, set only once a merge moved it (null means
    # "still where it was recorded"), so an undo can send it back exactly.
    original_profile = models.ForeignKey(
        "profiles.Profile",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    # Events are a log: no foreign-key checks per insert against devices and sessions
    # (erasure deletes events before their devices and sessions).
    device = models.ForeignKey(
        "profiles.Device",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    session = models.ForeignKey(
        "sessions_timeline.Session",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    type = models.CharField(max_length=10, choices=Type.choices)
    name = models.CharField(max_length=255, blank=True, default="")
    properties = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField()
    original_timestamp = models.DateTimeField(
        null=True, blank=True, help_text="The client's timestamp when it was out of range."
    )
    received_at = models.DateTimeField()
    message_id = models.CharField(max_length=100)
    source = models.CharField(max_length=6, choices=Source.choices, default=Source.SDK)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "message_id"], name="event_app_message_id_uniq")
        ]
        indexes = [
            models.Index(fields=["profile", "-timestamp", "-id"], name="event_timeline"),
            # Standalone (server-side) events of a profile's timeline, without scanning
            # past its session events.
            models.Index(
                fields=["profile", "-timestamp", "-id"],
                condition=Q(session__isnull=True),
                name="event_timeline_standalone",
            ),
            models.Index(
                fields=["original_profile"],
                condition=Q(original_profile__isnull=False),
                name="event_moved_by_merge",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.name}".strip()
