"""Writes on events beyond ingestion: moves for merges and their undo, erasure."""

from __future__ import annotations

from django.db import connection

from events.models import Event


def events_reassign(*, source_id: int, target_id: int, limit: int) -> int:
    """Move up to ``limit`` events of profile ``source_id`` to ``target_id``, remembering where
    each was first recorded. Returns how many moved (0: none left)."""
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
