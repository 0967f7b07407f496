"""pushapp.db: the hot path's one-statement UPDATE, and its errors as Django's."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from profiles.models import Device, Profile
from pushapp.db import rows_update
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
