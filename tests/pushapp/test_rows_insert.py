"""pushapp.db.rows_insert: one binary INSERT for the hot path's new rows, as bulk_create would
have written them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError

from profiles.models import Device, DeviceBinding, Profile
from profiles.services import app_create
from pushapp.db import rows_insert
from tests.wire import wire_statements

pytestmark = pytest.mark.django_db


def test_rows_get_their_keys_defaults_and_related_rows_inserted_just_before() -> None:
    app, _ = app_create(name="Insert app")
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    profiles = [
        Profile(app=app, user_id="ann", kind="identified", attributes={"plan": "pro", "n": 1}),
        Profile(app=app),
    ]
    rows_insert(Profile, profiles)
    assert all(p.pk for p in profiles) and profiles[0].pk != profiles[1].pk
    devices = [
        Device(
            app=app,
            device_id=f"d{n}",
            profile=profile,
            binding_changed_at=at,
            first_seen_at=at,
            last_seen_at=at,
        )
        for n, profile in enumerate(profiles)
    ]
    rows_insert(Device, devices)
    bindings = [
        DeviceBinding(
            app=app, device=device, profile=device.profile, bound_at=at, reason="first_seen"
        )
        for device in devices
    ]
    rows_insert(DeviceBinding, bindings)

    ann = Profile.objects.get(pk=profiles[0].pk)
    assert ann.user_id == "ann" and ann.attributes == {"plan": "pro", "n": 1}
    assert ann.public_id == profiles[0].public_id  # the Python default, kept
    assert ann.created_at is not None and ann.updated_at is not None  # auto_now(_add)
    guest = Profile.objects.get(pk=profiles[1].pk)
    assert guest.kind == "guest" and guest.user_id is None and guest.attributes == {}
    assert Device.objects.get(device_id="d1").profile_id == guest.pk
    assert list(
        DeviceBinding.objects.filter(device__app=app)
        .order_by("pk")
        .values_list("profile_id", flat=True)
    ) == [ann.pk, guest.pk]
    assert profiles[0]._state.adding is False


def test_one_statement_whatever_the_number_of_rows() -> None:
    app, _ = app_create(name="Insert app")
    for size in (1, 50):
        with wire_statements() as statements:
            rows_insert(Profile, [Profile(app=app) for _ in range(size)])
        inserts = [s for s in statements if "INSERT" in s]
        assert len(inserts) == 1, statements
        assert "unnest" in inserts[0] or "profiles_profile" in inserts[0], inserts
    assert Profile.objects.filter(app=app).count() == 51


def test_a_constraint_violation_raises_djangos_error() -> None:
    app, _ = app_create(name="Insert app")
    rows_insert(Profile, [Profile(app=app, user_id="dup", kind="identified")])
    with pytest.raises(IntegrityError):
        rows_insert(Profile, [Profile(app=app, user_id="dup", kind="identified")])
