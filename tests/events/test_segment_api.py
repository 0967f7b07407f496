"""The Segment-compatible API over HTTP: each call type, batches, gzip, keys in the body,
dedupe, clock skew, per-item errors. Every test reads the rows back from PostgreSQL."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from events.models import Event
from profiles.models import Device, Profile
from tests.conftest import ApiApp

pytestmark = pytest.mark.django_db


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_track_creates_device_guest_profile_and_event(api_app: ApiApp) -> None:
    response = api_app.segment(
        "track",
        {
            "anonymousId": "anon-1",
            "event": "Product Viewed",
            "properties": {"sku": "A-1", "price": 9.5},
            "messageId": "m-1",
            "context": {
                "device": {
                    "type": "ios",
                    "model": "iPhone16,2",
                    "manufacturer": "Apple",
                    "id": "hw-1",
                    "token": "apns-1",
                },
                "os": {"name": "iOS", "version": "18.1"},
                "app": {"version": "2.3.0", "build": "230"},
                "library": {"name": "analytics-ios", "version": "4.1"},
                "locale": "en-GB",
                "timezone": "Europe/London",
            },
        },
    )
    assert response.status_code == 200
    assert response.json()["success"] is True
    device = Device.objects.get(app=api_app.app, device_id="anon-1")
    assert (device.platform, device.model, device.manufacturer) == ("ios", "iPhone16,2", "Apple")
    assert (device.os_name, device.os_version, device.app_version, device.app_build) == (
        "iOS",
        "18.1",
        "2.3.0",
        "230",
    )
    assert (device.locale, device.timezone, device.sdk_name) == (
        "en-GB",
        "Europe/London",
        "analytics-ios",
    )
    assert device.push_token == "apns-1" and device.push_opt_in is True
    assert device.attributes["hardware_id"] == "hw-1"
    assert device.profile.kind == Profile.Kind.GUEST
    event = Event.objects.get(app=api_app.app, message_id="m-1")
    assert (event.type, event.name, event.properties) == (
        "track",
        "Product Viewed",
        {"sku": "A-1", "price": 9.5},
    )
    assert event.profile == device.profile and event.device == device
    assert event.source == "sdk"
    profile = Profile.objects.get(pk=device.profile_id)
    assert profile.event_count == 1 and profile.last_seen_at == event.timestamp


@pytest.mark.parametrize(
    ("route", "body", "expected_type", "expected_name"),
    [
        ("screen", {"name": "Home", "properties": {"tab": 1}}, "screen", "Home"),
        ("page", {"name": "Pricing", "properties": {"path": "/pricing"}}, "page", "Pricing"),
        ("group", {"groupId": "acme", "traits": {"plan": "pro"}}, "group", "acme"),
        ("identify", {"userId": "u-1", "traits": {"email": "a@example.com"}}, "identify", ""),
    ],
)
def test_each_call_type_is_stored(
    api_app: ApiApp, route: str, body: dict, expected_type: str, expected_name: str
) -> None:
    response = api_app.segment(route, {"anonymousId": "anon-x", "messageId": f"m-{route}", **body})
    assert response.status_code == 200, response.content
    event = Event.objects.get(app=api_app.app, message_id=f"m-{route}")
    assert (event.type, event.name) == (expected_type, expected_name)
    if route == "group":
        assert event.properties == {"groupId": "acme", "traits": {"plan": "pro"}}


def test_identify_converts_the_guest_in_place_and_sets_traits(api_app: ApiApp) -> None:
    api_app.segment("track", {"anonymousId": "anon-1", "event": "Opened"})
    guest = Device.objects.get(device_id="anon-1").profile
    response = api_app.segment(
        "identify",
        {
            "anonymousId": "anon-1",
            "userId": "u-42",
            "traits": {"firstName": "Ada", "address": {"city": "London"}},
        },
    )
    assert response.status_code == 200
    profile = Profile.objects.get(pk=guest.pk)
    assert (profile.user_id, profile.kind) == ("u-42", "identified")
    assert profile.attributes["first_name"] == "Ada"
    assert profile.attributes["city"] == "London"
    assert "first_name" in profile.attribute_times
    assert Profile.objects.filter(app=api_app.app).count() == 1
    assert Event.objects.filter(profile=profile).count() == 2


def test_traits_in_context_are_used(api_app: ApiApp) -> None:
    api_app.segment(
        "identify", {"userId": "u-1", "anonymousId": "a", "context": {"traits": {"email": "x@y.z"}}}
    )
    assert Profile.objects.get(user_id="u-1").attributes["email"] == "x@y.z"


def test_track_by_user_id_only_creates_identified_profile(api_app: ApiApp) -> None:
    response = api_app.segment("track", {"userId": "backend-7", "event": "Invoice Paid"})
    assert response.status_code == 200
    profile = Profile.objects.get(app=api_app.app, user_id="backend-7")
    assert profile.kind == "identified"
    event = Event.objects.get(profile=profile)
    assert event.device_id is None


def test_batch_merges_batch_context_into_each_message(api_app: ApiApp) -> None:
    body = {
        "batch": [
            {
                "type": "track",
                "anonymousId": "a1",
                "event": "One",
                "messageId": "b1",
                "context": {"app": {"version": "9"}},
            },
            {"type": "screen", "anonymousId": "a1", "name": "Two", "messageId": "b2"},
        ],
        "context": {
            "os": {"name": "Android", "version": "14"},
            "app": {"version": "1", "build": "7"},
        },
    }
    response = api_app.segment("batch", body)
    assert response.status_code == 200
    assert response.json()["accepted"] == 2
    first = Event.objects.get(message_id="b1")
    second = Event.objects.get(message_id="b2")
    assert first.context["os"] == {"name": "Android", "version": "14"}
    assert first.context["app"] == {"version": "9", "build": "7"}  # the message's own wins
    assert second.context["app"] == {"version": "1", "build": "7"}
    assert Device.objects.get(device_id="a1").os_name == "Android"


def test_gzip_body_whatever_the_content_type(api_app: ApiApp) -> None:
    raw = b'{"batch":[{"type":"track","anonymousId":"gz","event":"Zipped","messageId":"gz-1"}]}'
    response = api_app.post(
        "/v1/batch", gzip.compress(raw), content_type="text/plain", HTTP_CONTENT_ENCODING="gzip"
    )
    assert response.status_code == 200, response.content
    assert Event.objects.filter(message_id="gz-1", name="Zipped").exists()


def test_write_key_in_body(api_app: ApiApp) -> None:
    response = api_app.segment(
        "batch",
        {
            "writeKey": api_app.keys.write_key,
            "batch": [{"type": "track", "anonymousId": "a", "event": "E", "messageId": "wk-1"}],
        },
        auth={},
    )
    assert response.status_code == 200
    assert Event.objects.filter(app=api_app.app, message_id="wk-1").exists()
    wrong = api_app.segment(
        "track", {"writeKey": "wk_wrong", "anonymousId": "a", "event": "E"}, auth={}
    )
    assert wrong.status_code == 401


def test_retried_batch_stores_nothing_twice(api_app: ApiApp) -> None:
    body = {
        "batch": [
            {"type": "track", "anonymousId": "a", "event": f"E{i}", "messageId": f"r-{i}"}
            for i in range(5)
        ]
    }
    first = api_app.segment("batch", body)
    second = api_app.segment("batch", body)
    assert first.json()["accepted"] == 5
    assert second.status_code == 200
    assert second.json()["accepted"] == 0 and second.json()["duplicates"] == 5
    assert Event.objects.filter(app=api_app.app).count() == 5
    assert Profile.objects.get(devices__device_id="a").event_count == 5


def test_duplicate_message_id_inside_one_batch(api_app: ApiApp) -> None:
    body = {"batch": [{"type": "track", "anonymousId": "a", "event": "E", "messageId": "same"}] * 3}
    response = api_app.segment("batch", body)
    assert response.json()["accepted"] == 1 and response.json()["duplicates"] == 2
    assert Event.objects.filter(message_id="same").count() == 1


def test_clock_skew_is_corrected_the_segment_way(api_app: ApiApp) -> None:
    # The device clock runs 2 hours fast: it says it sent at now+2h an event it made at now+2h-5min.
    device_now = timezone.now() + timedelta(hours=2)
    before = timezone.now()
    api_app.segment(
        "track",
        {
            "anonymousId": "a",
            "event": "E",
            "messageId": "skew",
            "timestamp": _iso(device_now - timedelta(minutes=5)),
            "sentAt": _iso(device_now),
        },
    )
    after = timezone.now()
    event = Event.objects.get(message_id="skew")
    assert (
        before - timedelta(minutes=5, seconds=1)
        <= event.timestamp
        <= after - timedelta(minutes=5) + timedelta(seconds=1)
    )
    assert event.received_at >= before


def test_batch_level_sent_at_corrects_every_message(api_app: ApiApp) -> None:
    device_now = timezone.now() - timedelta(days=1)  # a clock a day slow
    api_app.segment(
        "batch",
        {
            "sentAt": _iso(device_now),
            "batch": [
                {
                    "type": "track",
                    "anonymousId": "a",
                    "event": "E",
                    "messageId": "s1",
                    "timestamp": _iso(device_now - timedelta(seconds=30)),
                }
            ],
        },
    )
    event = Event.objects.get(message_id="s1")
    assert abs((event.received_at - event.timestamp).total_seconds() - 30) < 2


@pytest.mark.parametrize("offset", [timedelta(days=-365 * 40), timedelta(days=3)])
def test_timestamps_out_of_range_use_receive_time_and_keep_the_original(
    api_app: ApiApp, offset: timedelta
) -> None:
    claimed = datetime.now(UTC) + offset
    api_app.segment(
        "track",
        {"anonymousId": "a", "event": "E", "messageId": "range", "timestamp": _iso(claimed)},
    )
    event = Event.objects.get(message_id="range")
    assert event.timestamp == event.received_at
    assert event.original_timestamp is not None
    assert abs((event.original_timestamp - claimed).total_seconds()) < 1


def test_bad_message_in_batch_is_refused_alone(api_app: ApiApp) -> None:
    body = {
        "batch": [
            {"type": "track", "anonymousId": "a", "event": "Good", "messageId": "g1"},
            {"type": "track", "event": "No ids", "messageId": "bad1"},
            {"type": "track", "anonymousId": "a", "event": "x" * 40_000, "messageId": "bad2"},
            {"type": "launch", "anonymousId": "a", "messageId": "bad3"},
            {"type": "track", "anonymousId": "a", "messageId": "bad4"},
            "not an object",
            {"type": "track", "anonymousId": "a", "event": "Good too", "messageId": "g2"},
        ]
    }
    response = api_app.segment("batch", body)
    assert response.status_code == 200
    payload = response.json()
    assert payload["accepted"] == 2
    codes = {error["index"]: error["code"] for error in payload["errors"]}
    assert codes == {
        1: "missing_ids",
        2: "message_too_large",
        3: "invalid_type",
        4: "missing_field",
        5: "invalid_message",
    }
    assert set(Event.objects.values_list("message_id", flat=True)) == {"g1", "g2"}


def test_single_message_route_refuses_the_whole_request(api_app: ApiApp) -> None:
    response = api_app.segment("track", {"anonymousId": "a"})
    assert response.status_code == 400
    assert response.json()["code"] == "missing_field"
    assert "event" in response.json()["message"]
    assert not Event.objects.exists()


def test_alias_links_previous_id_to_user(api_app: ApiApp) -> None:
    api_app.segment("track", {"anonymousId": "anon-9", "event": "Browse"})
    response = api_app.segment("alias", {"previousId": "anon-9", "userId": "u-9"})
    assert response.status_code == 200
    profile = Profile.objects.get(user_id="u-9")
    assert profile.devices.filter(device_id="anon-9").exists()
    assert Event.objects.filter(profile=profile, type="alias").exists()


def test_success_is_exactly_200_with_small_json(api_app: ApiApp) -> None:
    response = api_app.segment("identify", {"userId": "u", "anonymousId": "a"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert len(response.content) < 200
