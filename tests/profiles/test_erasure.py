"""Erasure over HTTP: everything on the person is gone (checked in every table), the ids are
suppressed so late data cannot re-create the person, and lifting the suppression works."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.db import connection, models
from django.test import Client

from events.models import Event
from profiles.models import (
    Device,
    Profile,
    ProfileAlias,
    ProfileErasure,
    ProfileMerge,
    QuarantinedAttribute,
    Suppression,
    suppression_hash,
)
from profiles.services import suppression_lift
from sessions_timeline.models import Session
from tests.conftest import ApiApp
from tests.factories import UserFactory
from tests.messages import Send, identify, track
from tests.profiles.profile_api import IDENTIFY, call, error, ok, patch, profile_url

pytestmark = pytest.mark.django_db

# "zqx" cannot occur in a hex hash: every id and value of the erased person carries it, so a
# scan of every table for it finds anything left behind.
ALICE = "alice-zqx"


def _alice(send: Send) -> Profile:
    send(
        {
            **identify(
                "phone-zqx",
                ALICE,
                0,
                {"email": "alice.zqx@example.com", "birthday": "someday-zqx", "plan": "pro"},
            ),
            "context": {"device": {"token": "push-zqx"}},
        },
        track("phone-zqx", "Opened zqx", 1, mid="m1-zqx"),
    )
    send(track("tablet-zqx", "Guest zqx", 2, mid="m2-zqx"))
    send(identify("tablet-zqx", ALICE, 3))  # the tablet's guest is merged into Alice
    send({"type": "alias", "previousId": "old-zqx", "userId": ALICE, "messageId": "al-zqx"})
    send(track(None, "Invoice zqx", 4, user=ALICE, mid="m3-zqx"))
    return Profile.objects.get(user_id=ALICE)


def _bob(send: Send) -> None:
    """Bob, another person; he used the shared phone before Alice logged in on it."""
    send(identify("bob-phone", "bob", 0, {"email": "bob@example.com"}))
    send(track("shared", "Bob browses", 0.5, mid="bob-shared"))
    send(identify("shared", "bob", 1), track("shared", "Bob on shared", 2, mid="bob-2"))
    send(identify("shared", ALICE, 5), track("shared", "Alice on shared zqx", 6, mid="m4-zqx"))


def _left_behind(token: str) -> dict[str, int]:
    """Rows of any table whose text mentions ``token``."""
    found: dict[str, int] = {}
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = model._meta.db_table
            cursor.execute(
                f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s', [f"%{token}%"]
            )
            count = cursor.fetchone()[0]
            if count:
                found[table] = count
    return found


def _referencing(profile_ids: set[int], device_ids: set[int]) -> dict[str, int]:
    """Rows of any model pointing at the erased profiles or devices (constraint or not)."""
    found: dict[str, int] = {}
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if not isinstance(field, models.ForeignKey):
                continue
            target = field.related_model
            ids = profile_ids if target is Profile else device_ids if target is Device else None
            if not ids:
                continue
            count = model._base_manager.filter(**{f"{field.attname}__in": ids}).count()
            if count:
                found[f"{model._meta.label}.{field.name}"] = count
    return found


def test_erasure_removes_everything_on_the_person_and_only_that(
    api_app: ApiApp, send: Send
) -> None:
    alice = _alice(send)
    _bob(send)
    profile_ids = set(Profile.objects.filter(merged_into=alice).values_list("pk", flat=True))
    profile_ids.add(alice.pk)
    device_ids = set(
        Device.objects.filter(device_id__in=["phone-zqx", "tablet-zqx"]).values_list(
            "pk", flat=True
        )
    )
    assert len(profile_ids) == 2 and len(device_ids) == 2
    assert Session.objects.filter(profile_id__in=profile_ids).exists()
    assert QuarantinedAttribute.objects.filter(profile=alice).exists()
    assert ProfileMerge.objects.filter(target=alice).exists()
    bob_events = Event.objects.filter(profile__user_id="bob").count()
    assert _left_behind("zqx")

    body = ok(call(api_app, "DELETE", profile_url(ALICE)))

    assert body["erased"] is True and body["profile_id"] == str(alice.public_id)
    counts = body["counts"]
    assert counts["profiles"] == 2 and counts["devices"] == 2 and counts["aliases"] == 1
    assert counts["events"] == 8 and counts["merges"] == 1 and counts["quarantine"] == 1
    assert counts["shared_devices_kept"] == 1
    assert _referencing(profile_ids, device_ids) == {}
    assert _left_behind("zqx") == {}
    assert _left_behind("push-zqx") == {}
    # Bob and the shared phone's history with him are untouched; the phone now has a fresh
    # guest and no push token.
    assert Event.objects.filter(profile__user_id="bob").count() == bob_events
    shared = Device.objects.get(device_id="shared")
    assert shared.profile.kind == "guest" and shared.profile.user_id is None
    assert shared.push_token is None
    assert Session.objects.filter(device=shared, profile__user_id="bob").exists()
    # The audit row keeps counts only.
    erasure = ProfileErasure.objects.get()
    assert erasure.public_id == alice.public_id and erasure.counts["events"] == 8
    kinds = sorted(Suppression.objects.values_list("kind", flat=True))
    assert kinds == ["alias", "device_id", "device_id", "user_id"]
    assert not Suppression.objects.filter(value_hash=suppression_hash("shared")).exists()
    assert Suppression.objects.filter(kind="user_id", value_hash=suppression_hash(ALICE)).exists()


def test_late_data_naming_an_erased_id_is_refused(
    api_app: ApiApp, send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    _alice(send)
    ok(call(api_app, "DELETE", profile_url(ALICE)))
    result = send(
        track(None, "Late by user", 10, user=ALICE, mid="late-1"),
        track("phone-zqx", "Late by device", 10, mid="late-2"),
        track(None, "Late by alias", 10, user="old-zqx", mid="late-3"),
        identify("new-device", ALICE, 10),
        {"type": "alias", "previousId": "tablet-zqx", "userId": "someone", "messageId": "late-5"},
        track("fresh-device", "Someone new", 10, mid="fine"),
    )
    assert result["accepted"] == 1 and result["rejected"] == 5
    assert {e["code"] for e in result["errors"]} == {"suppressed"}
    assert [e["index"] for e in result["errors"]] == [0, 1, 2, 3, 4]
    assert not Profile.objects.filter(user_id__in=[ALICE, "someone"]).exists()
    assert not Device.objects.filter(device_id__in=["phone-zqx", "new-device"]).exists()
    assert not ProfileAlias.objects.filter(alias="old-zqx").exists()
    assert list(Event.objects.values_list("message_id", flat=True)) == ["fine"]
    # Single-message routes and the profile API refuse too.
    response = api_app.segment("track", track(None, "x", 11, user=ALICE))
    error(response, 400, "suppressed")
    error(api_app.post(IDENTIFY, {"device_id": "phone-zqx", "user_id": "x"}), 400, "suppressed")
    error(patch(api_app, ALICE, {"attributes": {"a": 1}}), 409, "suppressed")
    error(call(api_app, "PUT", profile_url("old-zqx"), {"attributes": {}}), 409, "suppressed")
    assert not Profile.objects.filter(user_id=ALICE).exists()
    # Erasing again is not an error.
    again = ok(call(api_app, "DELETE", profile_url(ALICE)))
    assert again["already_erased"] is True and again["counts"] == {}


def test_lifting_a_suppression_lets_the_id_in_again(api_app: ApiApp, send: Send) -> None:
    _alice(send)
    ok(call(api_app, "DELETE", profile_url(ALICE)))
    assert suppression_lift(app=api_app.app, kind="user_id", value=ALICE) == 1
    body = ok(patch(api_app, ALICE, {"attributes": {"plan": "new"}}))
    assert body["created"] is True and body["attributes"] == {"plan": "new"}
    # The device id is still suppressed until its own suppression is lifted.
    assert send(track("phone-zqx", "x", 20, mid="x1"))["errors"][0]["code"] == "suppressed"
    assert suppression_lift(app=api_app.app, kind="device_id", value="phone-zqx") == 1
    assert send(track("phone-zqx", "x", 20, mid="x1"))["accepted"] == 1


def test_a_guest_is_erased_by_its_public_id(api_app: ApiApp, send: Send) -> None:
    send(track("guest-zqx", "Browse zqx", 0, mid="gz"))
    guest = Device.objects.get(device_id="guest-zqx").profile
    url = f"/api/v1/profiles/by-id/{guest.public_id}"
    body = ok(call(api_app, "DELETE", url))
    assert body["counts"]["events"] == 1 and body["counts"]["devices"] == 1
    assert _left_behind("zqx") == {}
    error(call(api_app, "DELETE", url), 404, "not_found")
    assert send(track("guest-zqx", "Back", 1, mid="gz2"))["errors"][0]["code"] == "suppressed"


def test_erasure_needs_the_server_key(api_app: ApiApp, send: Send) -> None:
    _alice(send)
    write_key = api_app.bearer(api_app.keys.write_key)
    error(call(api_app, "DELETE", profile_url(ALICE), auth=write_key), 403, "forbidden")
    error(call(api_app, "DELETE", profile_url("nobody")), 404, "not_found")
    assert Profile.objects.filter(user_id=ALICE).exists()


def test_staff_lift_a_suppression_in_the_admin_after_confirming(
    api_app: ApiApp, send: Send
) -> None:
    _alice(send)
    ok(call(api_app, "DELETE", profile_url(ALICE)))
    staff = Client()
    staff.force_login(UserFactory.create(is_superuser=True))
    changelist = "/admin/profiles/suppression/"
    listing = staff.get(changelist + f"?q={ALICE}")
    assert listing.status_code == 200
    suppression = Suppression.objects.get(kind="user_id")
    assert suppression.value_hash in listing.content.decode()
    form = {"action": "lift", "_selected_action": [str(suppression.pk)]}
    confirm = staff.post(changelist, form)
    assert confirm.status_code == 200 and "Yes, lift 1 suppression" in confirm.content.decode()
    assert Suppression.objects.filter(pk=suppression.pk).exists()  # nothing yet
    done = staff.post(changelist, {**form, "confirm": "yes"})
    assert done.status_code == 302
    assert not Suppression.objects.filter(pk=suppression.pk).exists()
    ok(patch(api_app, ALICE, {"attributes": {"back": True}}))
