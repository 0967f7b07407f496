"""Writes on sessions: sessionization at ingestion (later), moves for merges."""

from __future__ import annotations

from django.db.models import F
from django.db.models.functions import Coalesce

from sessions_timeline.models import Session


def sessions_reassign(*, source_id: int, target_id: int) -> int:
    """Move every session of profile ``source_id`` to ``target_id`` (sessions are few per
    profile next to events, so one statement). Returns how many moved."""
    return Session.objects.filter(profile_id=source_id).update(
        profile_id=target_id, original_profile_id=Coalesce(F("original_profile_id"), source_id)
    )
