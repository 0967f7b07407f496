"""The database itself refuses duplicates, whatever the application does."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from events.models import Event
from profiles.models import Device, Profile
from tests.factories import (
    AppFactory,
    DeviceFactory,
    EventFactory,
    GuestProfileFactory,
    ProfileFactory,
)

pytestmark = pytest.mark.django_db


def test_user_id_unique_per_app() -> None:
    profile = ProfileFactory.create(user_id="u1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Profile.objects.create(app=profile.app, user_id="u1", kind="identified")
    Profile.objects.create(
        app=AppFactory.create(), user_id="u1", kind="identified"
    )  # another app: fine
    # Many guests (NULL user id) are fine.
    GuestProfileFactory.create_batch(3, app=profile.app)


def test_device_id_unique_per_app() -> None:
    device = DeviceFactory(device_id="d1")
    with pytest.raises(IntegrityError), transaction.atomic():
        DeviceFactory(app=device.app, device_id="d1")
    DeviceFactory(device_id="d1")  # another app
    assert Device.objects.filter(device_id="d1").count() == 2


def test_message_id_unique_per_app() -> None:
    event = EventFactory(message_id="m1")
    with pytest.raises(IntegrityError), transaction.atomic():
        EventFactory(profile=event.profile, message_id="m1")
    EventFactory(message_id="m1")  # another app
    assert Event.objects.filter(message_id="m1").count() == 2


def test_push_token_unique_per_app() -> None:
    device = DeviceFactory(push_token="tok")
    with pytest.raises(IntegrityError), transaction.atomic():
        DeviceFactory(app=device.app, push_token="tok")


def test_kind_must_match_user_id() -> None:
    app = AppFactory.create()
    with pytest.raises(IntegrityError), transaction.atomic():
        Profile.objects.create(app=app, user_id=None, kind="identified")
    with pytest.raises(IntegrityError), transaction.atomic():
        Profile.objects.create(app=app, user_id="x", kind="guest")
