"""Writes on sessions: moves for merges and their undo (sessionization comes with ingestion)."""

from __future__ import annotations

from django.db.models import F
from django.db.models.functions import Coalesce

from sessions_timeline.models import Session


def sessions_reassign(*, source_id: int, target_id: int) -> int:
    """Move every session of profile ``source_id`` to ``target_id`` (sessions are few next to
    events, so one statement). Returns how many moved."""
    return Session.objects.filter(profile_id=source_id).update(
        profile_id=target_id, original_profile_id=Coalesce(F("original_profile_id"), source_id)
    )


def sessions_restore(*, source_id: int, target_id: int, origin_ids: list[int]) -> int:
    """Undo of a merge: sessions first recorded on ``origin_ids`` go back to ``source_id``."""
    Session.objects.filter(profile_id=target_id, original_profile_id=source_id).update(
        profile_id=source_id, original_profile=None
    )
    Session.objects.filter(profile_id=target_id, original_profile_id__in=origin_ids).update(
        profile_id=source_id
    )
    return Session.objects.filter(profile_id=source_id).count()
