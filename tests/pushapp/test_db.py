"""pushapp.db: the hot path's one-statement UPDATE, its raw SELECT, its errors as Django's,
and the prepared statements and generic plans of the connection's server-side statements."""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction

from profiles.models import Device, Profile
from pushapp.db import fetch_all, in_list, list_param, rows_update, select_rows
from tests.conftest import ApiApp
from tests.factories import DeviceFactory, ProfileFactory

pytestmark = pytest.mark.django_db


def test_rows_update_writes_each_rows_own_values_including_json_and_relations() -> None:
    first, second = ProfileFactory.create_batch(2, attributes={})
    first.attributes, second.attributes = {"plan": "pro", "big": 10**30}, {"n": [1, 2]}
    first.event_count, second.event_count = 7, 9
    rows_update(Profile, [first, second], ["attributes", "event_count"])
    assert Profile.objects.get(pk=first.pk).attributes == {"plan": "pro", "big": 10**30}
    assert Profile.objects.get(pk=second.pk).event_count == 9
    device = DeviceFactory.create()
    device.profile = first  # a relation assigned on the object
    rows_update(Device, [device], ["profile"])
    assert Device.objects.get(pk=device.pk).profile_id == first.pk


def test_rows_update_raises_djangos_integrity_error() -> None:
    first = ProfileFactory.create()
    second = ProfileFactory.create(app=first.app)
    second.user_id = first.user_id
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_update(Profile, [second], ["user_id"])


def test_select_rows_builds_what_the_orm_builds() -> None:
    first = ProfileFactory.create(attributes={"plan": "pro", "big": 10**30, "tags": ["a"]})
    second = ProfileFactory.create(app=first.app, attributes={})
    ProfileFactory.create(app=first.app)  # not asked for
    got = select_rows(
        Profile,
        f"app_id = %s AND {in_list('id', 'bigint')}",
        [first.app_id, list_param([second.pk, first.pk])],
    )
    expected = list(Profile.objects.filter(pk__in=[first.pk, second.pk]).order_by("pk"))
    assert [p.pk for p in got] == [p.pk for p in expected]
    for mine, orm in zip(got, expected, strict=True):
        for field in Profile._meta.concrete_fields:
            assert getattr(mine, field.attname) == getattr(orm, field.attname), field.name
        assert not mine._state.adding and mine._state.db == "default"
    assert got[0].attributes == {"plan": "pro", "big": 10**30, "tags": ["a"]}
    first_seen = got[0].first_seen_at
    assert first_seen is not None and first_seen.tzinfo is not None


@pytest.mark.django_db(transaction=True)
def test_select_rows_lock_holds_the_rows_until_the_transaction_ends() -> None:
    profile = ProfileFactory.create()  # committed: the other connection sees it
    other = psycopg.connect(
        **{k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"},
        autocommit=True,
    )
    try:
        with transaction.atomic():
            select_rows(Profile, "id = %s", [profile.pk], lock=True)
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(
                    "SELECT id FROM profiles_profile WHERE id = %s FOR UPDATE NOWAIT", [profile.pk]
                )
        # Without the lock, the same statement takes the row at once.
        other.execute(
            "SELECT id FROM profiles_profile WHERE id = %s FOR UPDATE NOWAIT", [profile.pk]
        )
    finally:
        other.close()


def test_ingestion_statements_are_prepared_and_run_generic_plans(api_app: ApiApp) -> None:
    """psycopg prepares a server-side statement run prepare_threshold (5) times on a
    connection; the connection's plan_cache_mode makes PostgreSQL plan it once."""
    assert settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"] == 5
    for n in range(7):
        track = {"anonymousId": f"prep-{n % 2}", "event": "Opened", "messageId": f"prep-{n}"}
        assert api_app.segment("track", track).status_code == 200
    [(mode,)] = fetch_all("SELECT current_setting('plan_cache_mode')", [])
    assert mode == "force_generic_plan"
    prepared = [
        statement for (statement,) in fetch_all("SELECT statement FROM pg_prepared_statements", [])
    ]
    assert any('FROM "profiles_device"' in text for text in prepared), prepared
    assert any("INSERT INTO events_event" in text for text in prepared), prepared
