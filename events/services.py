"""Writes on events beyond ingestion: moves for merges and their undo."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Max, Q

from events.models import Event

MoveCursor = tuple[datetime, int]


def events_reassign(
    *, source_id: int, target_id: int, limit: int, after: MoveCursor | None = None
) -> tuple[int, MoveCursor | None]:
    """Move up to ``limit`` events of profile ``source_id`` to ``target_id``, remembering the
    profile each was first recorded on. Returns how many moved (0: none left) and where the
    next batch starts.

    On PostgreSQL the batches walk the timeline index newest first from ``after``: a moved
    row leaves a dead entry under the source in that index until VACUUM, and starting each
    batch from the top would step over all the earlier batches' dead entries again (a
    100,000-event merge in batches of 5,000 would visit about a million). Events that reach
    the source meanwhile are newer than the cursor; the merge's final pass (no ``after``)
    moves them."""
    if connection.vendor == "postgresql":
        window = "AND (timestamp, id) < (%s, %s)" if after is not None else ""
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH batch AS (
                    SELECT id, timestamp FROM events_event
                    WHERE profile_id = %s {window}
                    ORDER BY timestamp DESC, id DESC
                    LIMIT %s
                ), moved AS (
                    UPDATE events_event AS e SET profile_id = %s,
                           original_profile_id = COALESCE(e.original_profile_id, %s)
                    -- profile_id again: re-checked if a concurrent writer moved the row
                    FROM batch WHERE e.id = batch.id AND e.profile_id = %s
                    RETURNING e.id
                )
                SELECT (SELECT count(*) FROM moved), last.timestamp, last.id
                FROM (SELECT 1) AS one
                LEFT JOIN (
                    SELECT timestamp, id FROM batch ORDER BY timestamp, id LIMIT 1
                ) AS last ON true
                """,
                [source_id, *(after or ()), limit, target_id, source_id, source_id],
            )
            row = cursor.fetchone()
        moved = int(row[0])
        return moved, (row[1], row[2]) if moved else None
    ids = list(Event.objects.filter(profile_id=source_id).values_list("pk", flat=True)[:limit])
    Event.objects.filter(pk__in=ids, original_profile__isnull=True).update(
        original_profile_id=source_id
    )
    return Event.objects.filter(pk__in=ids).update(profile_id=target_id), None


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
