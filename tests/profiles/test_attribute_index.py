"""Filtering profiles by a configured field uses an index on PostgreSQL: 100,000 profiles,
ANALYZE, then the planner's own choice (default settings) for an equality on a string, a
number range, a date-time range and a date range."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection

from profiles.attributes import attribute_index_name
from profiles.models import Profile
from profiles.selectors import profiles_filter
from profiles.services import attribute_indexes_sync
from tests.conftest import ApiApp
from tests.profiles.profile_api import configure

pytestmark = pytest.mark.django_db

PROFILES = 100_000

_FILL = """
INSERT INTO profiles_profile (
    app_id, public_id, user_id, kind, attributes, attribute_times,
    event_count, session_count, created_at, updated_at
)
SELECT %s, gen_random_uuid(), 'user-' || i, 'identified',
       jsonb_build_object(
           'email', 'user' || i || '@example.com',
           'age', i %% 100,
           'plan', CASE WHEN i %% 3 = 0 THEN 'pro' ELSE 'free' END,
           'created_at', to_char(
               timestamp '2020-01-01' + i * interval '1 minute', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
           ),
           'birthday', to_char(date '1950-01-01' + (i %% 20000), 'YYYY-MM-DD')
       ),
       '{}'::jsonb, 0, 0, now(), now()
FROM generate_series(1, %s) AS i
"""


def _plan(queryset: Any) -> str:
    return str(queryset.explain())


def _uses(plan: str, index: str) -> bool:
    """An Index Scan, Index Only Scan or Bitmap Index Scan on ``index``."""
    return bool(
        re.search(rf"(Index Scan using|Index Only Scan using|Index Scan on) {index}\b", plan)
    )


def test_filters_on_configured_fields_use_an_index(api_app: ApiApp) -> None:
    """One crowd for the four filters (building 100,000 profiles takes a few seconds)."""
    configure(api_app, "age", "number")
    created = attribute_indexes_sync()  # inside the test's transaction: a plain CREATE INDEX
    assert attribute_index_name("age", "number") in created["created"]
    with connection.cursor() as cursor:
        cursor.execute(_FILL, [api_app.app.pk, PROFILES])
        cursor.execute("ANALYZE profiles_profile")
    assert Profile.objects.filter(app=api_app.app).count() == PROFILES
    app = api_app.app

    # A string equality: JSON containment on the GIN (jsonb_path_ops) index.
    found = profiles_filter(app=app, field_key="email", op="eq", value="user4242@example.com")
    assert list(found.values_list("user_id", flat=True)) == ["user-4242"]
    plan = _plan(found)
    assert _uses(plan, "profile_attributes_gin"), plan

    # A number range on the field's expression index.
    found = profiles_filter(app=app, field_key="age", op="gt", value="98")
    assert found.count() == PROFILES // 100
    plan = _plan(found)
    assert _uses(plan, attribute_index_name("age", "number")), plan

    # A date-time range (the last 500 minutes of sign-ups) on the standard field's index.
    found = profiles_filter(app=app, field_key="created_at", op="gt", value="2020-03-10T02:20:00Z")
    assert found.count() == 500
    plan = _plan(found)
    assert _uses(plan, attribute_index_name("created_at", "datetime")), plan

    # A date range on the standard birthday field's index.
    found = profiles_filter(app=app, field_key="birthday", op="lt", value="1950-01-04")
    assert found.count() == 15  # days 0 to 2, five profiles each
    plan = _plan(found)
    assert _uses(plan, attribute_index_name("birthday", "date")), plan


def test_sync_drops_indexes_no_field_needs_and_keeps_the_standard_ones(api_app: ApiApp) -> None:
    field = configure(api_app, "score", "number")
    assert attribute_index_name("score", "number") in attribute_indexes_sync()["created"]
    field.delete()
    result = attribute_indexes_sync()
    assert result["dropped"] == [attribute_index_name("score", "number")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'profiles_profile'")
        names = {row[0] for row in cursor.fetchall()}
    assert attribute_index_name("created_at", "datetime") in names
    assert attribute_index_name("birthday", "date") in names
    assert "profile_attributes_gin" in names


def test_the_attributes_gin_index_has_no_pending_list(db: None) -> None:
    """Each profile update writes its GIN entries itself: no pending list that one request
    later merges while others wait (migration 0011)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'profile_attributes_gin'")
        [(options,)] = cursor.fetchall()
    assert options == ["fastupdate=off"]
