"""Writes on events beyond ingestion: moves for merges and their undo."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Max, Q

from events.models import Event


def events_reassign(*, source_id: int, target_id: int, limit: int) -> int:
    """Move up to ``limit`` events of profile ``source_id`` to ``target_id``, remembering the
    profile each was first recorded on. Returns how many moved (0: none left)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE events_event SET profile_id = %s,
                       original_profile_id = COALESCE(original_profile_id, %s)
                WHERE id IN (SELECT id FROM events_event WHERE profile_id = %s LIMIT %s)
                """,
                [target_id, source_id, source_id, limit],
            )
            return cursor.rowcount
    ids = list(Event.objects.filter(profile_id=source_id).values_list("pk", flat=True)[:limit])
    Event.objects.filter(pk__in=ids, original_profile__isnull=True).update(
        original_profile_id=source_id
    )
    return Event.objects.filter(pk__in=ids).update(profile_id=target_id)


@dataclass(frozen=True)
class RestoredEvents:
    total: int
    since: int
    newest: datetime | None


def events_restore(
    *,
    source_id: int,
    target_id: int,
    origin_ids: list[int],
    device_ids: list[int],
    since: datetime,
) -> RestoredEvents:
    """Undo of a merge: events first recorded on ``origin_ids`` go back to ``source_id``, and
    so do events that arrived on the target since the merge from the devices it moved (the
    binding history says they were the source's)."""
    moved_back = Q(profile_id=target_id, original_profile_id__in=origin_ids)
    arrived_since = Q(
        profile_id=target_id,
        original_profile__isnull=True,
        device_id__in=device_ids,
        received_at__gte=since,
    )
    since_count = (
        Event.objects.filter(arrived_since).update(profile_id=source_id) if device_ids else 0
    )
    back = Event.objects.filter(moved_back)
    # Events first recorded on the source itself are home again: no "moved" mark left.
    back.filter(original_profile_id=source_id).update(profile_id=source_id, original_profile=None)
    Event.objects.filter(moved_back).update(profile_id=source_id)
    newest = Event.objects.filter(profile_id=source_id).aggregate(newest=Max("timestamp"))["newest"]
    total = Event.objects.filter(profile_id=source_id).count()
    return RestoredEvents(total=total, since=since_count, newest=newest)
