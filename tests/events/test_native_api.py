"""The native API over HTTP: device register, identify (with attribute operations), logout and
event batches, and their validation errors. Every test reads the rows back from PostgreSQL."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from django.utils import timezone

from events.models import Event
from profiles.models import Device, DeviceBinding, Profile
from tests.conftest import ApiApp

pytestmark = pytest.mark.django_db

DEVICES = "/api/v1/devices"
IDENTIFY = "/api/v1/identify"
EVENTS = "/api/v1/events"


def _logout(device_id: str) -> str:
    return f"/api/v1/devices/{device_id}/logout"


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.content[:500])
    return orjson.loads(response.content)  # type: ignore[no-any-return]


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = orjson.loads(response.content)
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body  # type: ignore[no-any-return]


def _nothing_stored(api_app: ApiApp) -> None:
    assert not Event.objects.filter(app=api_app.app).exists()
    assert not Profile.objects.filter(app=api_app.app).exists()
    assert not Device.objects.filter(app=api_app.app).exists()


def _device(api_app: ApiApp, device_id: str) -> Device:
    return Device.objects.select_related("profile").get(app=api_app.app, device_id=device_id)


# -- device register --------------------------------------------------------------------------

FULL_DEVICE = {
    "device_id": "dev-1",
    "platform": "ios",
    "os_name": "iOS",
    "os_version": "18.1",
    "model": "iPhone16,2",
    "manufacturer": "Apple",
    "app_version": "2.3.0",
    "app_build": "230",
    "sdk_name": "pushapp-ios",
    "sdk_version": "1.4.0",
    "locale": "en-GB",
    "timezone": "Europe/London",
    "push_token": "apns-token-1",
    "push_opt_in": True,
}


def test_register_stores_every_device_field(api_app: ApiApp) -> None:
    body = _ok(api_app.post(DEVICES, FULL_DEVICE))
    device = _device(api_app, "dev-1")
    for field, value in FULL_DEVICE.items():
        assert getattr(device, field) == value, field
    assert device.profile.kind == Profile.Kind.GUEST and device.profile.user_id is None
    assert body == {
        "device_id": "dev-1",
        "push_token": "apns-token-1",
        "push_opt_in": True,
        "profile_id": str(device.profile.public_id),
        "user_id": None,
        "kind": "guest",
    }
    assert DeviceBinding.objects.get(device=device).reason == DeviceBinding.Reason.FIRST_SEEN
    assert not Event.objects.filter(app=api_app.app).exists()  # registering is not an event


def test_register_with_the_server_key_works_too(api_app: ApiApp) -> None:
    _ok(api_app.post(DEVICES, {"device_id": "dev-s", "platform": "android"}, auth=api_app.bearer()))
    assert _device(api_app, "dev-s").platform == "android"


def test_re_register_updates_the_device_in_place(api_app: ApiApp) -> None:
    _ok(api_app.post(DEVICES, FULL_DEVICE))
    first = _device(api_app, "dev-1")
    body = _ok(
        api_app.post(
            DEVICES,
            {
                "device_id": "dev-1",
                "os_version": "18.2",
                "app_version": "2.4.0",
                "push_opt_in": False,
            },
        )
    )
    device = _device(api_app, "dev-1")
    assert device.pk == first.pk and device.profile_id == first.profile_id
    assert (device.os_version, device.app_version, device.push_opt_in) == ("18.2", "2.4.0", False)
    assert device.model == "iPhone16,2"  # fields not sent are kept
    assert device.push_token == "apns-token-1"  # no push_token key: the token is kept
    assert body["push_opt_in"] is False and body["push_token"] == "apns-token-1"
    assert Device.objects.filter(app=api_app.app).count() == 1
    assert Profile.objects.filter(app=api_app.app).count() == 1


def test_re_register_replaces_the_push_token(api_app: ApiApp) -> None:
    _ok(api_app.post(DEVICES, {"device_id": "dev-1", "push_token": "old"}))
    body = _ok(api_app.post(DEVICES, {"device_id": "dev-1", "push_token": "new"}))
    assert body["push_token"] == "new"
    assert _device(api_app, "dev-1").push_token == "new"


def test_push_token_moves_off_the_other_device(api_app: ApiApp) -> None:
    _ok(
        api_app.post(
            DEVICES, {"device_id": "old-phone", "push_token": "tok-1", "push_opt_in": True}
        )
    )
    _ok(
        api_app.post(
            DEVICES, {"device_id": "new-phone", "push_token": "tok-1", "push_opt_in": True}
        )
    )
    assert _device(api_app, "old-phone").push_token is None
    assert _device(api_app, "new-phone").push_token == "tok-1"
    assert list(
        Device.objects.filter(app=api_app.app, push_token="tok-1").values_list(
            "device_id", flat=True
        )
    ) == ["new-phone"]
    # And back again, onto an existing device.
    _ok(api_app.post(DEVICES, {"device_id": "old-phone", "push_token": "tok-1"}))
    assert _device(api_app, "old-phone").push_token == "tok-1"
    assert _device(api_app, "new-phone").push_token is None


def test_same_push_token_in_two_apps_is_two_devices(api_app: ApiApp, other_app: ApiApp) -> None:
    _ok(api_app.post(DEVICES, {"device_id": "dev-1", "push_token": "shared"}))
    _ok(other_app.post(DEVICES, {"device_id": "dev-1", "push_token": "shared"}))
    assert _device(api_app, "dev-1").push_token == "shared"
    assert _device(other_app, "dev-1").push_token == "shared"


def test_register_with_a_user_id_binds_the_device_to_that_user(api_app: ApiApp) -> None:
    body = _ok(api_app.post(DEVICES, {"device_id": "dev-1", "user_id": "u-1"}))
    device = _device(api_app, "dev-1")
    assert (device.profile.user_id, device.profile.kind) == ("u-1", "identified")
    assert (body["user_id"], body["kind"]) == ("u-1", "identified")
    assert Profile.objects.filter(app=api_app.app).count() == 1


# -- identify -----------------------------------------------------------------------------


def test_identify_converts_the_devices_guest_in_place(api_app: ApiApp) -> None:
    _ok(
        api_app.post(
            EVENTS, {"events": [{"device_id": "dev-1", "name": "Opened", "message_id": "e-1"}]}
        )
    )
    guest = _device(api_app, "dev-1").profile
    assert guest.kind == Profile.Kind.GUEST
    body = _ok(
        api_app.post(
            IDENTIFY,
            {
                "device_id": "dev-1",
                "user_id": "u-42",
                "attributes": {"email": "ada@example.com", "plan": "pro"},
            },
        )
    )
    profile = Profile.objects.get(pk=guest.pk)
    assert (profile.user_id, profile.kind) == ("u-42", "identified")
    assert profile.attributes == {"email": "ada@example.com", "plan": "pro"}
    assert set(profile.attribute_times) == {"email", "plan"}
    assert body == {"profile_id": str(profile.public_id), "user_id": "u-42", "kind": "identified"}
    assert Profile.objects.filter(app=api_app.app).count() == 1
    assert Event.objects.get(message_id="e-1").profile_id == profile.pk
    identify = Event.objects.get(app=api_app.app, type="identify")
    assert identify.profile_id == profile.pk
    assert identify.properties == {"email": "ada@example.com", "plan": "pro"}


def test_identify_of_an_unknown_device_creates_it_on_the_user(api_app: ApiApp) -> None:
    _ok(api_app.post(IDENTIFY, {"device_id": "dev-new", "user_id": "u-1"}))
    device = _device(api_app, "dev-new")
    assert device.profile.user_id == "u-1"
    assert Profile.objects.filter(app=api_app.app).count() == 1


def test_identify_keeps_its_message_id_and_dedupes_the_event(api_app: ApiApp) -> None:
    body = {"device_id": "dev-1", "user_id": "u-1", "message_id": "idf-1", "attributes": {"a": 1}}
    _ok(api_app.post(IDENTIFY, body))
    _ok(api_app.post(IDENTIFY, body))
    assert Event.objects.filter(app=api_app.app, message_id="idf-1").count() == 1


def test_identify_operations_are_applied_in_order(api_app: ApiApp) -> None:
    _ok(
        api_app.post(
            IDENTIFY,
            {
                "device_id": "dev-1",
                "user_id": "u-1",
                "attributes": {"plan": "free", "tags": ["a"], "tmp": 1, "logins": 1},
            },
        )
    )
    _ok(
        api_app.post(
            IDENTIFY,
            {
                "device_id": "dev-1",
                "user_id": "u-1",
                "operations": [
                    {"op": "set", "key": "plan", "value": "pro"},
                    {"op": "set_once", "key": "first_source", "value": "ads"},
                    {"op": "set_once", "key": "plan", "value": "ignored"},
                    {"op": "unset", "key": "tmp"},
                    {"op": "unset", "key": "never-set"},
                    {"op": "increment", "key": "logins", "value": 2},
                    {"op": "increment", "key": "score", "value": 1.5},
                    {"op": "append", "key": "tags", "value": ["b", "a"]},
                    {"op": "append", "key": "tags", "value": "c"},
                    {"op": "remove", "key": "tags", "value": "a"},
                    {"op": "remove", "key": "missing-list", "value": "x"},
                    {"op": "set", "key": "address", "value": {"city": "London"}},
                ],
            },
        )
    )
    profile = Profile.objects.get(app=api_app.app, user_id="u-1")
    assert profile.attributes == {
        "plan": "pro",
        "first_source": "ads",
        "logins": 3,
        "score": 1.5,
        "tags": ["b", "c"],
        "address": {"city": "London"},
    }
    assert "tmp" not in profile.attribute_times
    assert set(profile.attribute_times) == set(profile.attributes)


def test_attributes_map_is_applied_before_operations(api_app: ApiApp) -> None:
    _ok(
        api_app.post(
            IDENTIFY,
            {
                "device_id": "dev-1",
                "user_id": "u-1",
                "attributes": {"n": 10},
                "operations": [{"op": "increment", "key": "n", "value": 5}],
            },
        )
    )
    assert Profile.objects.get(user_id="u-1").attributes == {"n": 15}


def test_identify_by_user_id_only_needs_the_server_key(api_app: ApiApp) -> None:
    body = {"user_id": "u-backend", "attributes": {"plan": "team"}}
    _error(api_app.post(IDENTIFY, body), 400, "missing_ids")
    _nothing_stored(api_app)
    response = _ok(api_app.post(IDENTIFY, body, auth=api_app.bearer()))
    profile = Profile.objects.get(app=api_app.app, user_id="u-backend")
    assert (profile.kind, profile.attributes) == ("identified", {"plan": "team"})
    assert response["profile_id"] == str(profile.public_id)
    assert not Device.objects.filter(app=api_app.app).exists()
    assert Event.objects.get(app=api_app.app, type="identify").source == "server"


def test_identify_of_another_user_on_the_same_device_rebinds_it(api_app: ApiApp) -> None:
    _ok(api_app.post(IDENTIFY, {"device_id": "dev-1", "user_id": "alice"}))
    _ok(api_app.post(IDENTIFY, {"device_id": "dev-1", "user_id": "bob"}))
    assert _device(api_app, "dev-1").profile.user_id == "bob"
    assert Profile.objects.filter(app=api_app.app, user_id="alice").exists()
    assert DeviceBinding.objects.filter(device__device_id="dev-1", reason="login").exists()


# -- logout --------------------------------------------------------------------------------


def test_logout_gives_the_device_a_fresh_guest_and_keeps_the_users_events(api_app: ApiApp) -> None:
    _ok(api_app.post(IDENTIFY, {"device_id": "dev-1", "user_id": "u-1"}))
    _ok(
        api_app.post(
            EVENTS, {"events": [{"device_id": "dev-1", "name": "Bought", "message_id": "before"}]}
        )
    )
    user = Profile.objects.get(app=api_app.app, user_id="u-1")

    body = _ok(api_app.post(_logout("dev-1"), {}))

    device = _device(api_app, "dev-1")
    guest = device.profile
    assert guest.pk != user.pk and guest.kind == Profile.Kind.GUEST and guest.user_id is None
    assert body == {"profile_id": str(guest.public_id), "user_id": None, "kind": "guest"}
    assert DeviceBinding.objects.filter(device=device, profile=guest, reason="logout").exists()
    user.refresh_from_db()
    assert user.merged_into_id is None and user.user_id == "u-1"
    assert Event.objects.get(message_id="before").profile_id == user.pk

    _ok(
        api_app.post(
            EVENTS, {"events": [{"device_id": "dev-1", "name": "Browsed", "message_id": "after"}]}
        )
    )
    assert Event.objects.get(message_id="after").profile_id == guest.pk
    assert Event.objects.filter(profile=user).count() == 2  # identify + Bought


def test_logout_with_an_empty_or_no_body(api_app: ApiApp) -> None:
    _ok(api_app.post(IDENTIFY, {"device_id": "dev-1", "user_id": "u-1"}))
    response = api_app.client.post(_logout("dev-1"), **api_app.basic())  # type: ignore[arg-type]
    _ok(response)
    assert _device(api_app, "dev-1").profile.kind == Profile.Kind.GUEST


def test_logging_back_in_after_logout_rebinds_to_the_user(api_app: ApiApp) -> None:
    _ok(api_app.post(IDENTIFY, {"device_id": "dev-1", "user_id": "u-1"}))
    user = Profile.objects.get(user_id="u-1")
    _ok(api_app.post(_logout("dev-1"), {}))
    _ok(api_app.post(IDENTIFY, {"device_id": "dev-1", "user_id": "u-1"}))
    assert _device(api_app, "dev-1").profile_id == user.pk


def test_logout_device_id_over_255_characters(api_app: ApiApp) -> None:
    _error(api_app.post(_logout("d" * 256), {}), 400, "invalid_id")
    _nothing_stored(api_app)


def test_logout_is_per_app(api_app: ApiApp, other_app: ApiApp) -> None:
    _ok(api_app.post(IDENTIFY, {"device_id": "dev-1", "user_id": "u-1"}))
    _ok(other_app.post(_logout("dev-1"), {}))
    assert _device(api_app, "dev-1").profile.user_id == "u-1"


# -- event batches -------------------------------------------------------------------------


def test_events_batch_with_per_item_results(api_app: ApiApp) -> None:
    now = timezone.now()
    body = {
        "events": [
            {
                "device_id": "dev-1",
                "name": "Product Viewed",
                "message_id": "e-1",
                "properties": {"sku": "A-1", "price": 9.5},
                "context": {"app": {"version": "2.3.0"}},
                "session_id": "sess-1",
                "timestamp": (now.replace(microsecond=0)).isoformat(),
            },
            {"device_id": "dev-1", "type": "screen", "name": "Home", "message_id": "e-2"},
            {
                "device_id": "dev-1",
                "type": "page",
                "message_id": "e-3",
                "properties": {"path": "/"},
            },
            {"device_id": "dev-1", "message_id": "e-4"},  # a track needs a name
            {"device_id": "dev-1", "name": "Dup", "message_id": "e-1"},  # duplicate in the batch
            {"name": "No ids", "message_id": "e-6"},
        ]
    }
    result = _ok(api_app.post(EVENTS, body))
    assert result["success"] is True
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (3, 1, 2)
    assert [(e["index"], e["code"]) for e in result["errors"]] == [
        (3, "missing_field"),
        (5, "missing_ids"),
    ]
    assert all(isinstance(e["message"], str) and e["message"] for e in result["errors"])

    device = _device(api_app, "dev-1")
    first = Event.objects.get(app=api_app.app, message_id="e-1")
    assert (first.type, first.name, first.properties) == (
        "track",
        "Product Viewed",
        {"sku": "A-1", "price": 9.5},
    )
    assert first.context == {"app": {"version": "2.3.0"}, "session_id": "sess-1"}
    assert first.device_id == device.pk and first.profile_id == device.profile_id
    assert first.timestamp == now.replace(microsecond=0) and first.source == "sdk"
    screen = Event.objects.get(message_id="e-2")
    assert (screen.type, screen.name) == ("screen", "Home")
    page = Event.objects.get(message_id="e-3")
    assert (page.type, page.name, page.properties) == ("page", "", {"path": "/"})
    assert set(Event.objects.filter(app=api_app.app).values_list("message_id", flat=True)) == {
        "e-1",
        "e-2",
        "e-3",
    }
    profile = Profile.objects.get(pk=device.profile_id)
    assert profile.event_count == 3


def test_numeric_session_id_is_kept_as_text(api_app: ApiApp) -> None:
    _ok(
        api_app.post(
            EVENTS,
            {"events": [{"device_id": "d", "name": "E", "message_id": "s", "session_id": 1712}]},
        )
    )
    assert Event.objects.get(message_id="s").context == {"session_id": "1712"}


def test_events_retry_is_deduplicated(api_app: ApiApp) -> None:
    body = {
        "events": [
            {"device_id": "dev-1", "name": f"E{i}", "message_id": f"r-{i}"} for i in range(4)
        ]
    }
    first = _ok(api_app.post(EVENTS, body))
    second = _ok(api_app.post(EVENTS, body))
    assert (first["accepted"], first["duplicates"]) == (4, 0)
    assert (second["accepted"], second["duplicates"], second["rejected"]) == (0, 4, 0)
    assert Event.objects.filter(app=api_app.app).count() == 4
    assert _device(api_app, "dev-1").profile.event_count == 4


def test_events_without_message_id_get_one_each(api_app: ApiApp) -> None:
    body = {"events": [{"device_id": "dev-1", "name": "E"}, {"device_id": "dev-1", "name": "E"}]}
    assert _ok(api_app.post(EVENTS, body))["accepted"] == 2
    ids = list(Event.objects.filter(app=api_app.app).values_list("message_id", flat=True))
    assert len(set(ids)) == 2 and all(ids)


def test_message_ids_are_per_app(api_app: ApiApp, other_app: ApiApp) -> None:
    body = {"events": [{"device_id": "dev-1", "name": "E", "message_id": "same"}]}
    assert _ok(api_app.post(EVENTS, body))["accepted"] == 1
    assert _ok(other_app.post(EVENTS, body))["accepted"] == 1
    assert Event.objects.filter(message_id="same").count() == 2


def test_user_id_only_events_need_the_server_key(api_app: ApiApp) -> None:
    body = {"events": [{"user_id": "u-7", "name": "Invoice Paid", "message_id": "inv-1"}]}
    result = _ok(api_app.post(EVENTS, body))
    assert result["accepted"] == 0
    assert [(e["index"], e["code"]) for e in result["errors"]] == [(0, "server_key_required")]
    _nothing_stored(api_app)

    result = _ok(api_app.post(EVENTS, body, auth=api_app.bearer()))
    assert (result["accepted"], result["rejected"]) == (1, 0)
    profile = Profile.objects.get(app=api_app.app, user_id="u-7")
    assert profile.kind == "identified" and profile.event_count == 1
    event = Event.objects.get(app=api_app.app, message_id="inv-1")
    assert event.profile_id == profile.pk and event.device_id is None
    assert event.source == "server"
    assert not Device.objects.filter(app=api_app.app).exists()


def test_user_id_only_event_lands_on_the_existing_user(api_app: ApiApp) -> None:
    _ok(api_app.post(IDENTIFY, {"device_id": "dev-1", "user_id": "u-1"}))
    user = Profile.objects.get(user_id="u-1")
    body = {"events": [{"user_id": "u-1", "name": "Refund", "message_id": "srv"}]}
    _ok(api_app.post(EVENTS, body, auth=api_app.bearer()))
    event = Event.objects.get(message_id="srv")
    assert event.profile_id == user.pk and event.device_id is None
    assert Profile.objects.filter(app=api_app.app).count() == 1


def test_event_with_device_and_user_id_identifies_the_device(api_app: ApiApp) -> None:
    _ok(api_app.post(EVENTS, {"events": [{"device_id": "dev-1", "name": "A", "message_id": "a"}]}))
    guest = _device(api_app, "dev-1").profile
    _ok(
        api_app.post(
            EVENTS,
            {"events": [{"device_id": "dev-1", "user_id": "u-9", "name": "B", "message_id": "b"}]},
        )
    )
    profile = Profile.objects.get(pk=guest.pk)
    assert profile.user_id == "u-9"
    assert set(Event.objects.filter(profile=profile).values_list("message_id", flat=True)) == {
        "a",
        "b",
    }


def test_empty_events_list_is_fine(api_app: ApiApp) -> None:
    result = _ok(api_app.post(EVENTS, {"events": []}))
    assert result == {"success": True, "accepted": 0, "duplicates": 0, "rejected": 0, "errors": []}
    _nothing_stored(api_app)


def test_other_apps_key_never_writes_here(api_app: ApiApp, other_app: ApiApp) -> None:
    body = {"events": [{"device_id": "dev-1", "name": "E", "message_id": "x"}]}
    _ok(api_app.post(EVENTS, body, auth=other_app.basic()))
    _nothing_stored(api_app)
    assert Event.objects.filter(app=other_app.app, message_id="x").exists()


# -- validation errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({}, "missing_ids", id="no-device_id"),
        pytest.param({"device_id": ""}, "missing_ids", id="empty-device_id"),
        pytest.param({"device_id": None}, "missing_ids", id="null-device_id"),
        pytest.param({"device_id": {"id": 1}}, "invalid_id", id="device_id-object"),
        pytest.param({"device_id": True}, "invalid_id", id="device_id-bool"),
        pytest.param({"device_id": "d" * 256}, "invalid_id", id="device_id-too-long"),
        pytest.param({"device_id": "d", "user_id": ["u"]}, "invalid_id", id="user_id-list"),
        pytest.param({"device_id": "d", "model": 16}, "invalid_type", id="model-number"),
        pytest.param({"device_id": "d", "platform": ["ios"]}, "invalid_type", id="platform-list"),
        pytest.param(
            {"device_id": "d", "platform": "p" * 33}, "invalid_type", id="platform-too-long"
        ),
        pytest.param({"device_id": "d", "locale": "l" * 36}, "invalid_type", id="locale-too-long"),
        pytest.param(
            {"device_id": "d", "os_version": "9" * 65}, "invalid_type", id="os_version-too-long"
        ),
        pytest.param(
            {"device_id": "d", "push_opt_in": "yes"}, "invalid_type", id="push_opt_in-string"
        ),
        pytest.param({"device_id": "d", "push_opt_in": 1}, "invalid_type", id="push_opt_in-number"),
        pytest.param(
            {"device_id": "d", "push_token": 12345}, "invalid_type", id="push_token-number"
        ),
        pytest.param(
            {"device_id": "d", "push_token": "t" * 513}, "invalid_type", id="push_token-too-long"
        ),
        pytest.param(
            {"device_id": "d", "timestamp": "yesterday"},
            "invalid_timestamp",
            id="timestamp-not-iso",
        ),
        pytest.param(
            {"device_id": "d", "timestamp": 1700000000}, "invalid_timestamp", id="timestamp-number"
        ),
        pytest.param(
            {"device_id": "d", "user_id": "null"}, "invalid_user_id", id="placeholder-user_id"
        ),
    ],
)
def test_device_register_validation(api_app: ApiApp, body: dict[str, Any], code: str) -> None:
    _error(api_app.post(DEVICES, body), 400, code)
    _nothing_stored(api_app)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({"device_id": "d"}, "missing_ids", id="no-user_id"),
        pytest.param({"device_id": "d", "user_id": ""}, "missing_ids", id="empty-user_id"),
        pytest.param({"device_id": "d", "user_id": {"id": 1}}, "invalid_id", id="user_id-object"),
        pytest.param({"device_id": "d", "user_id": 1.5}, "invalid_id", id="user_id-float"),
        pytest.param({"device_id": "d", "user_id": "u" * 256}, "invalid_id", id="user_id-too-long"),
        pytest.param({"device_id": ["d"], "user_id": "u"}, "invalid_id", id="device_id-list"),
        pytest.param(
            {"device_id": "d", "user_id": "undefined"}, "invalid_user_id", id="placeholder"
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "attributes": ["a"]},
            "invalid_type",
            id="attributes-list",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "attributes": "a=1"},
            "invalid_type",
            id="attributes-string",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "operations": {"op": "set"}},
            "invalid_type",
            id="operations-object",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "operations": ["set"]},
            "invalid_type",
            id="operation-string",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "operations": [{"op": "delete", "key": "k"}]},
            "invalid_operation",
            id="unknown-op",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "operations": [{"key": "k", "value": 1}]},
            "invalid_operation",
            id="missing-op",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "operations": [{"op": "set", "value": 1}]},
            "invalid_operation",
            id="missing-key",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "operations": [{"op": "set", "key": ""}]},
            "invalid_operation",
            id="empty-key",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "operations": [{"op": "set", "key": 3}]},
            "invalid_operation",
            id="key-number",
        ),
        pytest.param(
            {
                "device_id": "d",
                "user_id": "u",
                "operations": [{"op": "increment", "key": "n", "value": "1"}],
            },
            "invalid_operation",
            id="increment-string",
        ),
        pytest.param(
            {
                "device_id": "d",
                "user_id": "u",
                "operations": [{"op": "increment", "key": "n", "value": True}],
            },
            "invalid_operation",
            id="increment-bool",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "operations": [{"op": "increment", "key": "n"}]},
            "invalid_operation",
            id="increment-no-value",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "message_id": True},
            "invalid_message_id",
            id="message_id-bool",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "message_id": "m" * 101},
            "invalid_message_id",
            id="message_id-too-long",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "u", "timestamp": "soon"},
            "invalid_timestamp",
            id="timestamp-not-iso",
        ),
    ],
)
def test_identify_validation(api_app: ApiApp, body: dict[str, Any], code: str) -> None:
    _error(api_app.post(IDENTIFY, body), 400, code)
    _nothing_stored(api_app)


def test_a_bad_operation_applies_none_of_them(api_app: ApiApp) -> None:
    _ok(api_app.post(IDENTIFY, {"device_id": "d", "user_id": "u", "attributes": {"plan": "free"}}))
    body = {
        "device_id": "d",
        "user_id": "u",
        "operations": [{"op": "set", "key": "plan", "value": "pro"}, {"op": "explode", "key": "x"}],
    }
    _error(api_app.post(IDENTIFY, body), 400, "invalid_operation")
    assert Profile.objects.get(user_id="u").attributes == {"plan": "free"}


@pytest.mark.parametrize(
    ("event", "code"),
    [
        pytest.param({"device_id": "d", "name": 5}, "invalid_type", id="name-number"),
        pytest.param(
            {"device_id": "d", "name": "E", "type": "identify"}, "invalid_type", id="type-identify"
        ),
        pytest.param(
            {"device_id": "d", "name": "E", "type": "Track"}, "invalid_type", id="type-case"
        ),
        pytest.param(
            {"device_id": "d", "name": "E", "properties": [1]}, "invalid_type", id="properties-list"
        ),
        pytest.param(
            {"device_id": "d", "name": "E", "context": "x"}, "invalid_type", id="context-string"
        ),
        pytest.param(
            {"device_id": "d", "name": "E", "session_id": ["s"]}, "invalid_id", id="session_id-list"
        ),
        pytest.param({"device_id": 1.5, "name": "E"}, "invalid_id", id="device_id-float"),
        pytest.param(
            {"user_id": "u", "name": "E"}, "server_key_required", id="user-only-write-key"
        ),
        pytest.param({"name": "E"}, "missing_ids", id="no-ids"),
        pytest.param(
            {"device_id": "d", "name": "E", "message_id": False},
            "invalid_message_id",
            id="message_id-bool",
        ),
        pytest.param(
            {"device_id": "d", "name": "E", "timestamp": "2024-02-30T00:00:00Z"},
            "invalid_timestamp",
            id="timestamp-bad-date",
        ),
        pytest.param(
            {"device_id": "d", "user_id": "anonymous", "name": "E"},
            "invalid_user_id",
            id="placeholder",
        ),
    ],
)
def test_event_validation_is_per_item(api_app: ApiApp, event: dict[str, Any], code: str) -> None:
    good = {"device_id": "good", "name": "E", "message_id": "good"}
    result = _ok(api_app.post(EVENTS, {"events": [good, event]}))
    assert (result["accepted"], result["rejected"]) == (1, 1)
    assert [(e["index"], e["code"]) for e in result["errors"]] == [(1, code)]
    assert list(Event.objects.filter(app=api_app.app).values_list("message_id", flat=True)) == [
        "good"
    ]
    assert list(Device.objects.filter(app=api_app.app).values_list("device_id", flat=True)) == [
        "good"
    ]


@pytest.mark.parametrize("path", [DEVICES, IDENTIFY, EVENTS, _logout("d")])
def test_native_routes_need_a_key(api_app: ApiApp, path: str) -> None:
    _error(
        api_app.post(path, {"device_id": "d", "user_id": "u", "events": []}, auth={}),
        401,
        "unauthorized",
    )
    _error(
        api_app.post(path, {"device_id": "d"}, auth=api_app.bearer("sk_wrong")), 401, "unauthorized"
    )
    _nothing_stored(api_app)
