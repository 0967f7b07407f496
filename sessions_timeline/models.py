"""Sessions: how a person uses the app, one block of activity on one device at a time."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Session(models.Model):
    app = models.ForeignKey("profiles.App", on_delete=models.CASCADE, related_name="+")
    # profile, original_profile and device are indexed by the indexes below, which every
    # query on them uses (original_profile is only read with its profile).
    profile = models.ForeignKey(
        "profiles.Profile", on_delete=models.CASCADE, related_name="sessions", db_index=False
    )
    original_profile = models.ForeignKey(
        "profiles.Profile",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    device = models.ForeignKey(
        "profiles.Device", on_delete=models.CASCADE, related_name="sessions", db_index=False
    )
    sdk_session_id = models.CharField(max_length=128, null=True, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField()
    event_count = models.IntegerField(default=0)
    screen_count = models.IntegerField(default=0)
    app_version = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device", "sdk_session_id"],
                condition=Q(sdk_session_id__isnull=False),
                name="session_device_sdk_id_uniq",
            )
        ]
        indexes = [
            # The timeline's keyset order, id included so no page ever sorts a whale's sessions.
            models.Index(fields=["profile", "-started_at", "-id"], name="session_profile_started"),
            models.Index(fields=["device", "-last_event_at"], name="session_device_last_event"),
        ]

    def __str__(self) -> str:
        return f"session {self.pk} on device {self.device_id}"

    @property
    def duration_seconds(self) -> float:
        end = self.ended_at or self.last_event_at
        return max(0.0, (end - self.started_at).total_seconds())


class ProfileDailyActivity(models.Model):
    """Events per profile per day (UTC): the read model behind the profile page's activity
    chart, kept at ingestion so the chart reads at most 90 rows even for a whale."""

    profile = models.ForeignKey(
        "profiles.Profile", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    events = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "day"], name="dailyactivity_profile_day_uniq"
            )
        ]
        verbose_name_plural = "profile daily activity"

    def __str__(self) -> str:
        return f"{self.profile_id} {self.day}: {self.events}"
