"""Storage settings the ingestion path's speed depends on (docs/benchmarks.md)."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def test_tables_updated_by_every_batch_leave_room_for_hot_updates() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)",
            [
                [
                    "profiles_profile",
                    "profiles_device",
                    "sessions_timeline_session",
                    "sessions_timeline_profiledailyactivity",
                    "events_event",
                ]
            ],
        )
        options = dict(cursor.fetchall())
    assert options.pop("events_event") is None  # append-only: pages stay full
    assert options == {key: ["fillfactor=85"] for key in options} and len(options) == 4


def test_sessions_carry_no_index_another_one_covers() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'sessions_timeline_session'"
        )
        definitions = [row[0] for row in cursor.fetchall()]
    single_column = [d for d in definitions if d.endswith("(device_id)")]
    assert single_column == []
    assert not [d for d in definitions if "(original_profile_id)" in d]
    assert [d for d in definitions if "(device_id, last_event_at DESC)" in d]


def test_only_tombstones_are_in_the_merged_into_index() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'profiles_profile' "
            "AND indexdef LIKE '%%(merged_into_id)%%'"
        )
        definitions = [row[0] for row in cursor.fetchall()]
    assert len(definitions) == 1, definitions
    assert definitions[0].endswith("WHERE (merged_into_id IS NOT NULL)")
