"""Hostile and malformed input on the ingestion routes (Segment /v1/* and native /api/v1/*).

Every refusal is a 4xx with the one JSON error shape ``{"code", "message", "details"}``, never a
500; a request-level refusal writes nothing; a bad message inside a batch is refused alone (its
index and code in ``errors``) and the others are stored.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import Any

import orjson
import pytest
from django.conf import settings
from django.test import RequestFactory
from django.urls import resolve

from events.models import Event
from profiles.models import Device, Profile
from tests.conftest import ApiApp

pytestmark = pytest.mark.django_db

NATIVE_EVENTS = "/api/v1/events"
NATIVE_DEVICES = "/api/v1/devices"
NATIVE_IDENTIFY = "/api/v1/identify"
DEEP = "@@deep@@"  # placeholder replaced by raw nested JSON (orjson cannot write > 254 levels)


# -- helpers ----------------------------------------------------------------------------------


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is ``status`` with the JSON error shape and ``code``; returns the body."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = orjson.loads(response.content)
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    return body


def _batch_errors(response: Any) -> dict[int, str]:
    """A 200 batch result: ``{index: code}`` of the refused items."""
    assert response.status_code == 200, (response.status_code, response.content[:500])
    body = orjson.loads(response.content)
    assert body["success"] is True
    assert body["rejected"] == len(body["errors"])
    for error in body["errors"]:
        assert set(error) == {"index", "code", "message"}, error
        assert isinstance(error["message"], str) and error["message"]
    return {error["index"]: error["code"] for error in body["errors"]}


def _nothing_stored(api_app: ApiApp) -> None:
    assert not Event.objects.filter(app=api_app.app).exists()
    assert not Profile.objects.filter(app=api_app.app).exists()
    assert not Device.objects.filter(app=api_app.app).exists()


def _stored_message_ids(api_app: ApiApp) -> set[str]:
    return set(Event.objects.filter(app=api_app.app).values_list("message_id", flat=True))


def _raw(api_app: ApiApp, path: str, data: bytes, **extra: Any) -> Any:
    """POST raw bytes with the write key (Basic) and a JSON Content-Type unless overridden."""
    content_type = extra.pop("content_type", "application/json")
    headers: dict[str, Any] = {**extra.pop("auth", api_app.basic()), **extra}
    return api_app.client.post(path, data=data, content_type=content_type, **headers)


def _nested(depth: int) -> bytes:
    """``depth`` objects inside one another, as raw JSON."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def _with_deep(body: Any, depth: int) -> bytes:
    """``body`` as JSON with the string placeholder DEEP replaced by :func:`_nested` (depth)."""
    encoded = orjson.dumps(body)
    assert encoded.count(b'"' + DEEP.encode() + b'"') == 1
    return encoded.replace(b'"' + DEEP.encode() + b'"', _nested(depth))


def _track(message_id: str, /, **fields: Any) -> dict[str, Any]:
    """A valid Segment batch track message, ``fields`` overriding (None removes a key)."""
    message = {"type": "track", "anonymousId": "anon-1", "event": "Opened", "messageId": message_id}
    message.update(fields)
    return {key: value for key, value in message.items() if value is not None}


def _native(message_id: str, /, **fields: Any) -> dict[str, Any]:
    """A valid native event, ``fields`` overriding (None removes a key)."""
    event = {"device_id": "dev-1", "name": "Opened", "message_id": message_id}
    event.update(fields)
    return {key: value for key, value in event.items() if value is not None}


def _call_without_content_length(path: str, body: bytes, auth: dict[str, Any]) -> Any:
    """Run the view on a request with no Content-Length whose stream holds all of ``body``, as a
    server passing a chunked upload through would; the test client always sets the header."""
    request = RequestFactory().post(path, data=body, content_type="application/json", **auth)
    del request.META["CONTENT_LENGTH"]
    request._stream = io.BytesIO(body)  # type: ignore[attr-defined]
    match = resolve(path)
    response = match.func(request, *match.args, **match.kwargs)
    if hasattr(response, "render"):
        response.render()
    return response


# -- the body as a whole: JSON, emptiness, type ----------------------------------------------

ALL_ROUTES = [
    "/v1/track",
    "/v1/identify",
    "/v1/batch",
    NATIVE_EVENTS,
    NATIVE_DEVICES,
    NATIVE_IDENTIFY,
]

INVALID_JSON = [
    pytest.param(b'{"batch": [', id="unterminated"),
    pytest.param(b"{'anonymousId': 'a'}", id="single-quotes"),
    pytest.param(b'{"anonymousId": "a",}', id="trailing-comma"),
    pytest.param(b"not json at all", id="text"),
    pytest.param(b'{"a": 1} {"b": 2}', id="two-documents"),
    pytest.param(b'{"a": undefined}', id="undefined-literal"),
    pytest.param(b"", id="empty"),
    pytest.param(b"   \n\t ", id="whitespace-only"),
    pytest.param(b"[]", id="array"),
    pytest.param(b'[{"type": "track", "anonymousId": "a", "event": "E"}]', id="array-of-messages"),
    pytest.param(b'"a string"', id="string"),
    pytest.param(b"42", id="number"),
    pytest.param(b"null", id="null"),
    pytest.param(b"true", id="boolean"),
]


@pytest.mark.parametrize("path", ALL_ROUTES)
@pytest.mark.parametrize("data", INVALID_JSON)
def test_body_that_is_not_a_json_object_is_invalid_json(
    api_app: ApiApp, path: str, data: bytes
) -> None:
    _error(_raw(api_app, path, data), 400, "invalid_json")
    _nothing_stored(api_app)


@pytest.mark.parametrize("path", ALL_ROUTES)
def test_utf8_byte_order_mark_is_refused(api_app: ApiApp, path: str) -> None:
    # orjson refuses a BOM and says "UTF-8 byte order mark", which the reader files as UTF-8.
    _error(
        _raw(api_app, path, b'\xef\xbb\xbf{"anonymousId": "a", "event": "E"}'), 400, "invalid_utf8"
    )
    _nothing_stored(api_app)


def test_invalid_json_with_the_write_key_in_the_body_is_still_a_400(api_app: ApiApp) -> None:
    data = b'{"writeKey": "' + api_app.keys.write_key.encode() + b'", "batch": ['
    _error(_raw(api_app, "/v1/batch", data, auth={}), 400, "invalid_json")
    _nothing_stored(api_app)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing"),
        pytest.param({"batch": None}, id="null"),
        pytest.param({"batch": {"type": "track"}}, id="object"),
        pytest.param({"batch": "[]"}, id="string"),
        pytest.param({"batch": 3}, id="number"),
    ],
)
def test_segment_batch_that_is_not_a_list(api_app: ApiApp, body: dict[str, Any]) -> None:
    _error(api_app.segment("batch", body), 400, "invalid_batch")
    _nothing_stored(api_app)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing"),
        pytest.param({"events": None}, id="null"),
        pytest.param({"events": {"device_id": "d", "name": "E"}}, id="object"),
        pytest.param({"events": "[]"}, id="string"),
        pytest.param({"batch": [{"device_id": "d", "name": "E"}]}, id="segment-key"),
    ],
)
def test_native_events_that_is_not_a_list(api_app: ApiApp, body: dict[str, Any]) -> None:
    _error(api_app.post(NATIVE_EVENTS, body), 400, "invalid_batch")
    _nothing_stored(api_app)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({"context": ["ios"]}, "invalid_type", id="context-list"),
        pytest.param({"context": "ios"}, "invalid_type", id="context-string"),
        pytest.param({"context": {"os": {"name": "a\x00b"}}}, "nul_character", id="context-nul"),
        pytest.param({"sentAt": "last tuesday"}, "invalid_timestamp", id="sentAt-not-iso"),
        pytest.param({"sentAt": 1700000000}, "invalid_timestamp", id="sentAt-number"),
    ],
)
def test_bad_batch_level_fields_refuse_the_whole_batch(
    api_app: ApiApp, body: dict[str, Any], code: str
) -> None:
    response = api_app.segment("batch", {"batch": [_track("m-1")], **body})
    _error(response, 400, code)
    _nothing_stored(api_app)


# -- wrong types and missing fields in one message ------------------------------------------

SEGMENT_MESSAGE_PROBLEMS = [
    pytest.param({"event": 42}, "invalid_type", id="event-number"),
    pytest.param({"event": ["Opened"]}, "invalid_type", id="event-list"),
    pytest.param({"event": "E" * 256}, "invalid_type", id="event-too-long"),
    pytest.param({"event": None}, "missing_field", id="event-missing"),
    pytest.param({"event": ""}, "missing_field", id="event-empty"),
    pytest.param({"properties": [1, 2]}, "invalid_type", id="properties-list"),
    pytest.param({"properties": "a=1"}, "invalid_type", id="properties-string"),
    pytest.param({"context": [1]}, "invalid_type", id="context-list"),
    pytest.param({"userId": {"id": 7}}, "invalid_id", id="userId-object"),
    pytest.param({"userId": ["u-1"]}, "invalid_id", id="userId-list"),
    pytest.param({"userId": 1.5}, "invalid_id", id="userId-float"),
    pytest.param({"userId": True}, "invalid_id", id="userId-bool"),
    pytest.param({"userId": "u" * 256}, "invalid_id", id="userId-too-long"),
    pytest.param({"anonymousId": {"id": 1}}, "invalid_id", id="anonymousId-object"),
    pytest.param({"anonymousId": False}, "invalid_id", id="anonymousId-bool"),
    pytest.param({"anonymousId": "a" * 256}, "invalid_id", id="anonymousId-too-long"),
    pytest.param({"anonymousId": None}, "missing_ids", id="no-ids"),
    pytest.param({"anonymousId": None, "userId": None}, "missing_ids", id="no-ids-at-all"),
    pytest.param({"messageId": True}, "invalid_message_id", id="messageId-bool"),
    pytest.param({"messageId": {"id": "m"}}, "invalid_message_id", id="messageId-object"),
    pytest.param({"messageId": 1.5}, "invalid_message_id", id="messageId-float"),
    pytest.param({"messageId": "m" * 101}, "invalid_message_id", id="messageId-101-chars"),
    pytest.param({"timestamp": "yesterday"}, "invalid_timestamp", id="timestamp-not-iso"),
    pytest.param(
        {"timestamp": "2024-13-45T25:61:00Z"}, "invalid_timestamp", id="timestamp-bad-date"
    ),
    pytest.param({"timestamp": 1700000000}, "invalid_timestamp", id="timestamp-number"),
    pytest.param(
        {"timestamp": "2024-01-01T00:00:00+99:00"}, "invalid_timestamp", id="timestamp-bad-offset"
    ),
    pytest.param({"timestamp": "2" * 65}, "invalid_timestamp", id="timestamp-too-long"),
    pytest.param({"originalTimestamp": ["2024"]}, "invalid_timestamp", id="originalTimestamp-list"),
    pytest.param({"sentAt": "soon"}, "invalid_timestamp", id="sentAt-not-iso"),
    pytest.param({"properties": {"note": "a\x00b"}}, "nul_character", id="nul-in-value"),
    pytest.param({"properties": {"a\x00b": 1}}, "nul_character", id="nul-in-key"),
    pytest.param({"event": "Open\x00ed"}, "nul_character", id="nul-in-event"),
    pytest.param(
        {"context": {"device": {"model": ["\x00"]}}}, "nul_character", id="nul-in-context"
    ),
    pytest.param({"properties": {"blob": "x" * 33_000}}, "message_too_large", id="over-32kb"),
]


@pytest.mark.parametrize(("fields", "code"), SEGMENT_MESSAGE_PROBLEMS)
def test_bad_message_in_a_segment_batch_is_refused_alone(
    api_app: ApiApp, fields: dict[str, Any], code: str
) -> None:
    body = {
        "batch": [_track("good-1"), _track("bad", **fields), _track("good-2", anonymousId="anon-2")]
    }
    response = api_app.segment("batch", body)
    assert _batch_errors(response) == {1: code}
    assert orjson.loads(response.content)["accepted"] == 2
    assert _stored_message_ids(api_app) == {"good-1", "good-2"}
    assert set(Device.objects.filter(app=api_app.app).values_list("device_id", flat=True)) == {
        "anon-1",
        "anon-2",
    }


@pytest.mark.parametrize(("fields", "code"), SEGMENT_MESSAGE_PROBLEMS)
def test_bad_message_on_a_single_route_refuses_the_request(
    api_app: ApiApp, fields: dict[str, Any], code: str
) -> None:
    message = _track("single", **fields)
    del message["type"]
    body = _error(api_app.segment("track", message), 400, code)
    if code == "message_too_large":
        assert body["details"] == {"limit_bytes": settings.INGEST_MAX_MESSAGE_BYTES}
    _nothing_stored(api_app)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        pytest.param({"type": "launch", "anonymousId": "a"}, "invalid_type", id="unknown-type"),
        pytest.param(
            {"type": "TRACK", "anonymousId": "a", "event": "E"}, "invalid_type", id="type-uppercase"
        ),
        pytest.param({"anonymousId": "a", "event": "E"}, "invalid_type", id="type-missing"),
        pytest.param(
            {"type": 1, "anonymousId": "a", "event": "E"}, "invalid_type", id="type-number"
        ),
        pytest.param(
            {"type": ["track"], "anonymousId": "a", "event": "E"}, "invalid_type", id="type-list"
        ),
        pytest.param("track", "invalid_message", id="string"),
        pytest.param(None, "invalid_message", id="null"),
        pytest.param([{"type": "track"}], "invalid_message", id="list"),
        pytest.param(7, "invalid_message", id="number"),
        pytest.param({"type": "alias", "userId": "u-1"}, "missing_ids", id="alias-no-previousId"),
        pytest.param({"type": "alias", "previousId": "p"}, "missing_ids", id="alias-no-userId"),
        pytest.param({"type": "group", "anonymousId": "a"}, "missing_field", id="group-no-groupId"),
        pytest.param(
            {"type": "group", "anonymousId": "a", "groupId": {}},
            "invalid_id",
            id="group-groupId-object",
        ),
        pytest.param(
            {"type": "identify", "anonymousId": "a", "traits": [1]},
            "invalid_type",
            id="identify-traits-list",
        ),
        pytest.param(
            {"type": "screen", "anonymousId": "a", "name": 3},
            "invalid_type",
            id="screen-name-number",
        ),
    ],
)
def test_malformed_message_kinds_in_a_batch(api_app: ApiApp, message: Any, code: str) -> None:
    body = {"batch": [message, _track("good")]}
    response = api_app.segment("batch", body)
    assert _batch_errors(response) == {0: code}
    assert _stored_message_ids(api_app) == {"good"}


def test_message_id_of_exactly_100_characters_is_accepted(api_app: ApiApp) -> None:
    message_id = "m" * 100
    response = api_app.segment("track", {"anonymousId": "a", "event": "E", "messageId": message_id})
    assert response.status_code == 200, response.content
    assert _stored_message_ids(api_app) == {message_id}


NATIVE_EVENT_PROBLEMS = [
    pytest.param({"name": 42}, "invalid_type", id="name-number"),
    pytest.param({"name": None}, "missing_field", id="name-missing"),
    pytest.param({"name": "n" * 256}, "invalid_type", id="name-too-long"),
    pytest.param({"type": "launch"}, "invalid_type", id="unknown-type"),
    pytest.param({"type": "identify"}, "invalid_type", id="identify-type"),
    pytest.param({"properties": [1, 2]}, "invalid_type", id="properties-list"),
    pytest.param({"context": "ios"}, "invalid_type", id="context-string"),
    pytest.param({"user_id": {"id": 7}}, "invalid_id", id="user_id-object"),
    pytest.param({"device_id": ["d"]}, "invalid_id", id="device_id-list"),
    pytest.param({"device_id": True}, "invalid_id", id="device_id-bool"),
    pytest.param({"device_id": "d" * 256}, "invalid_id", id="device_id-too-long"),
    pytest.param({"device_id": None}, "missing_ids", id="no-ids"),
    pytest.param({"session_id": {"s": 1}}, "invalid_id", id="session_id-object"),
    pytest.param({"message_id": True}, "invalid_message_id", id="message_id-bool"),
    pytest.param({"message_id": [1]}, "invalid_message_id", id="message_id-list"),
    pytest.param({"message_id": "m" * 101}, "invalid_message_id", id="message_id-101-chars"),
    pytest.param({"timestamp": "yesterday"}, "invalid_timestamp", id="timestamp-not-iso"),
    pytest.param({"timestamp": 1700000000}, "invalid_timestamp", id="timestamp-number"),
    pytest.param({"properties": {"note": "a\x00b"}}, "nul_character", id="nul-in-value"),
    pytest.param({"properties": {"a\x00b": 1}}, "nul_character", id="nul-in-key"),
    pytest.param({"device_id": "dev\x00"}, "nul_character", id="nul-in-device_id"),
    pytest.param({"properties": {"blob": "x" * 33_000}}, "message_too_large", id="over-32kb"),
]


@pytest.mark.parametrize(("fields", "code"), NATIVE_EVENT_PROBLEMS)
def test_bad_native_event_is_refused_alone(
    api_app: ApiApp, fields: dict[str, Any], code: str
) -> None:
    body = {
        "events": [
            _native("good-1"),
            _native("bad", **fields),
            _native("good-2", device_id="dev-2"),
        ]
    }
    response = api_app.post(NATIVE_EVENTS, body)
    assert _batch_errors(response) == {1: code}
    assert orjson.loads(response.content)["accepted"] == 2
    assert _stored_message_ids(api_app) == {"good-1", "good-2"}
    assert set(Device.objects.filter(app=api_app.app).values_list("device_id", flat=True)) == {
        "dev-1",
        "dev-2",
    }


@pytest.mark.parametrize("item", ["track", None, 3, [{"device_id": "d"}]])
def test_native_event_that_is_not_an_object(api_app: ApiApp, item: Any) -> None:
    response = api_app.post(NATIVE_EVENTS, {"events": [item, _native("good")]})
    assert _batch_errors(response) == {0: "invalid_message"}
    assert _stored_message_ids(api_app) == {"good"}


# -- nesting depth --------------------------------------------------------------------------
# 40 levels parse fine and are refused by the depth check; 300 levels parse (orjson reads up to
# 1024) but are more than orjson.dumps writes (254); 2000 levels are more than orjson reads.


@pytest.mark.parametrize("depth", [40, 300])
def test_too_deep_message_in_a_segment_batch_is_refused_alone(api_app: ApiApp, depth: int) -> None:
    body = {"batch": [_track("good-1"), _track("deep", properties=DEEP), _track("good-2")]}
    response = _raw(api_app, "/v1/batch", _with_deep(body, depth))
    assert _batch_errors(response) == {1: "json_too_deep"}
    assert _stored_message_ids(api_app) == {"good-1", "good-2"}


@pytest.mark.parametrize("depth", [40, 300])
def test_too_deep_native_event_is_refused_alone(api_app: ApiApp, depth: int) -> None:
    body = {"events": [_native("good-1"), _native("deep", properties=DEEP)]}
    response = _raw(api_app, NATIVE_EVENTS, _with_deep(body, depth))
    assert _batch_errors(response) == {1: "json_too_deep"}
    assert _stored_message_ids(api_app) == {"good-1"}


@pytest.mark.parametrize("depth", [40, 300, 2000])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param(
            "/v1/track", {"anonymousId": "a", "event": "E", "properties": DEEP}, id="track"
        ),
        pytest.param("/v1/identify", {"userId": "u-1", "traits": DEEP}, id="identify"),
        pytest.param(NATIVE_DEVICES, {"device_id": "d", "model": DEEP}, id="devices"),
        pytest.param(
            NATIVE_IDENTIFY,
            {"device_id": "d", "user_id": "u-1", "attributes": DEEP},
            id="native-identify",
        ),
    ],
)
def test_too_deep_json_on_a_single_route(
    api_app: ApiApp, path: str, body: dict[str, Any], depth: int
) -> None:
    response = _raw(api_app, path, _with_deep(body, depth))
    _error(response, 400, "json_too_deep")
    _nothing_stored(api_app)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/v1/batch", {"batch": [_track("m", properties=DEEP)]}, id="segment-batch"),
        pytest.param(
            NATIVE_EVENTS, {"events": [_native("m", properties=DEEP)]}, id="native-events"
        ),
    ],
)
def test_json_deeper_than_the_parser_reads_is_json_too_deep(
    api_app: ApiApp, path: str, body: dict[str, Any]
) -> None:
    # Past orjson's own limit the body cannot be parsed, so the whole request is refused.
    _error(_raw(api_app, path, _with_deep(body, 2000)), 400, "json_too_deep")
    _nothing_stored(api_app)


def test_nesting_within_the_limit_is_stored(api_app: ApiApp) -> None:
    body = {"anonymousId": "a", "event": "E", "messageId": "nested", "properties": DEEP}
    response = _raw(api_app, "/v1/track", _with_deep(body, 20))
    assert response.status_code == 200, response.content
    assert Event.objects.get(app=api_app.app, message_id="nested").properties["a"]["a"]


# -- NUL characters (PostgreSQL cannot store them) --------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"anonymousId":"a","event":"E","properties":{"k":"x\\u0000y"}}', id="value"),
        pytest.param(b'{"anonymousId":"a","event":"E","properties":{"k\\u0000":1}}', id="key"),
        pytest.param(b'{"anonymousId":"a\\u0000","event":"E"}', id="anonymousId"),
        pytest.param(b'{"userId":"u\\u0000","event":"E"}', id="userId"),
        pytest.param(
            b'{"anonymousId":"a","event":"E","properties":{"l":["\\u0000"]}}', id="in-list"
        ),
    ],
)
def test_nul_escape_on_a_single_route(api_app: ApiApp, data: bytes) -> None:
    _error(_raw(api_app, "/v1/track", data), 400, "nul_character")
    _nothing_stored(api_app)


def test_nul_escape_in_a_batch_is_refused_alone(api_app: ApiApp) -> None:
    data = (
        b'{"batch":[{"type":"track","anonymousId":"a","event":"E","messageId":"ok"},'
        b'{"type":"track","anonymousId":"a","event":"E","messageId":"nul","properties":{"k":"\\u0000"}},'
        b'{"type":"track","anonymousId":"a","event":"E","messageId":"nulkey","properties":{"\\u0000":1}}]}'
    )
    assert _batch_errors(_raw(api_app, "/v1/batch", data)) == {
        1: "nul_character",
        2: "nul_character",
    }
    assert _stored_message_ids(api_app) == {"ok"}


@pytest.mark.parametrize(
    ("path", "data"),
    [
        pytest.param(NATIVE_DEVICES, b'{"device_id":"d\\u0000"}', id="devices-device_id"),
        pytest.param(NATIVE_DEVICES, b'{"device_id":"d","model":"x\\u0000"}', id="devices-model"),
        pytest.param(
            NATIVE_DEVICES, b'{"device_id":"d","push_token":"t\\u0000"}', id="devices-token"
        ),
        pytest.param(
            NATIVE_IDENTIFY, b'{"device_id":"d","user_id":"u\\u0000"}', id="identify-user_id"
        ),
        pytest.param(
            NATIVE_IDENTIFY,
            b'{"device_id":"d","user_id":"u","attributes":{"\\u0000":1}}',
            id="identify-key",
        ),
        pytest.param(
            NATIVE_IDENTIFY,
            b'{"device_id":"d","user_id":"u","operations":[{"op":"set","key":"k","value":"\\u0000"}]}',
            id="identify-op",
        ),
    ],
)
def test_nul_escape_on_native_single_routes(api_app: ApiApp, path: str, data: bytes) -> None:
    _error(_raw(api_app, path, data), 400, "nul_character")
    _nothing_stored(api_app)


def test_nul_in_the_write_key_of_basic_auth_is_401_not_500(api_app: ApiApp) -> None:
    for path, body in (
        ("/v1/track", {"anonymousId": "a", "event": "E"}),
        (NATIVE_EVENTS, {"events": []}),
    ):
        _error(api_app.post(path, body, auth=api_app.basic("wk_\x00")), 401, "unauthorized")
    _nothing_stored(api_app)


def test_nul_in_the_write_key_in_the_body_is_401_not_500(api_app: ApiApp) -> None:
    body = {"writeKey": "wk_\x00", "anonymousId": "a", "event": "E"}
    _error(api_app.segment("track", body, auth={}), 401, "unauthorized")
    _nothing_stored(api_app)


def test_nul_in_the_logout_path_is_400_not_500(api_app: ApiApp) -> None:
    response = api_app.post("/api/v1/devices/dev%00ice/logout", {})
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert orjson.loads(response.content)["code"] in {"invalid_id", "nul_character"}
    _nothing_stored(api_app)


# -- bytes that are not UTF-8 -----------------------------------------------------------------

INVALID_UTF8 = [
    pytest.param(b'{"anonymousId":"a","event":"\xff\xfe"}', id="ff-fe"),
    pytest.param(b'{"anonymousId":"a","event":"caf\xe9"}', id="latin-1"),
    pytest.param(b'{"anonymousId":"a","event":"\xc3"}', id="truncated-sequence"),
    pytest.param(b'{"anonymousId":"a","event":"\xc0\xaf"}', id="overlong"),
    pytest.param(b'{"anonymousId":"a","event":"\xed\xa0\x80"}', id="encoded-surrogate"),
    pytest.param(b'{"anonymousId":"a","event":"\\ud800"}', id="lone-surrogate-escape"),
    pytest.param(b'{"anonymousId":"a","ev\xffent":"E"}', id="in-a-key"),
]


@pytest.mark.parametrize("data", INVALID_UTF8)
def test_invalid_utf8_on_a_single_route(api_app: ApiApp, data: bytes) -> None:
    _error(_raw(api_app, "/v1/track", data), 400, "invalid_utf8")
    _nothing_stored(api_app)


@pytest.mark.parametrize("data", INVALID_UTF8)
def test_invalid_utf8_refuses_the_whole_batch(api_app: ApiApp, data: bytes) -> None:
    # The body cannot be decoded, so no message of it can be read: the request is refused.
    message = data[:-1] + b',"type":"track","messageId":"bad"}'
    batch = (
        b'{"batch":[{"type":"track","anonymousId":"a","event":"E","messageId":"ok"},'
        + message
        + b"]}"
    )
    _error(_raw(api_app, "/v1/batch", batch), 400, "invalid_utf8")
    events = (
        b'{"events":[{"device_id":"d","name":"ok"},'
        + data.replace(b"anonymousId", b"device_id").replace(b'"event"', b'"name"')
        + b"]}"
    )
    _error(_raw(api_app, NATIVE_EVENTS, events), 400, "invalid_utf8")
    _nothing_stored(api_app)


# -- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1.7976931348623157e309"])
@pytest.mark.parametrize(
    ("path", "template"),
    [
        pytest.param(
            "/v1/track", b'{"anonymousId":"a","event":"E","properties":{"n":%s}}', id="track"
        ),
        pytest.param(
            "/v1/batch",
            b'{"batch":[{"type":"track","anonymousId":"a","event":"E","properties":{"n":%s}}]}',
            id="batch",
        ),
        pytest.param(
            NATIVE_EVENTS,
            b'{"events":[{"device_id":"d","name":"E","properties":{"n":%s}}]}',
            id="native-events",
        ),
        pytest.param(
            NATIVE_IDENTIFY,
            b'{"device_id":"d","user_id":"u","attributes":{"n":%s}}',
            id="native-identify",
        ),
    ],
)
def test_number_out_of_double_range_is_invalid_number(
    api_app: ApiApp, path: str, template: bytes, number: bytes
) -> None:
    _error(_raw(api_app, path, template % number), 400, "invalid_number")
    _nothing_stored(api_app)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf"])
@pytest.mark.parametrize("path", ["/v1/track", NATIVE_EVENTS])
def test_nan_and_infinity_literals_are_invalid_json(
    api_app: ApiApp, path: str, literal: bytes
) -> None:
    if path == NATIVE_EVENTS:
        data = b'{"events":[{"device_id":"d","name":"E","properties":{"n":%s}}]}' % literal
    else:
        data = b'{"anonymousId":"a","event":"E","properties":{"n":%s}}' % literal
    _error(_raw(api_app, path, data), 400, "invalid_json")
    _nothing_stored(api_app)


def test_huge_integers_written_as_digits_are_stored(api_app: ApiApp) -> None:
    # orjson reads integers past 64 bits as floats; 2**64 - 1 stays an integer.
    data = (
        b'{"anonymousId":"a","event":"E","messageId":"big","properties":'
        b'{"e30":1000000000000000000000000000000,"neg":-1000000000000000000000000000000,'
        b'"u64":18446744073709551615}}'
    )
    response = _raw(api_app, "/v1/track", data)
    assert response.status_code == 200, response.content
    properties = Event.objects.get(app=api_app.app, message_id="big").properties
    # Read back from jsonb the value is the integer 10**30 again (numeric keeps the digits).
    assert float(properties["e30"]) == 1e30 and float(properties["neg"]) == -1e30
    assert properties["u64"] == 18446744073709551615


def test_huge_integer_user_id_is_an_id(api_app: ApiApp) -> None:
    response = _raw(api_app, "/v1/track", b'{"userId":18446744073709551615,"event":"E"}')
    assert response.status_code == 200, response.content
    assert Profile.objects.filter(app=api_app.app, user_id="18446744073709551615").exists()


def test_huge_integer_trait_reads_back_through_the_profile_api(api_app: ApiApp) -> None:
    # Stored fine is only fine if it can be read again: jsonb gives 1e30 back as an integer.
    data = b'{"userId":"u-big","anonymousId":"a","traits":{"big":1000000000000000000000000000000}}'
    assert _raw(api_app, "/v1/identify", data).status_code == 200
    response = api_app.get("/api/v1/profiles/u-big")
    assert response.status_code == 200, (response.status_code, response.content[:300])


def test_increment_past_double_range_is_refused_not_500(api_app: ApiApp) -> None:
    body = {
        "device_id": "d",
        "user_id": "u-1",
        "operations": [{"op": "increment", "key": "n", "value": 1.5e308}],
    }
    assert api_app.post(NATIVE_IDENTIFY, body).status_code == 200
    # Refused for the request or for that attribute alone; never a 500, never infinity stored.
    assert api_app.post(NATIVE_IDENTIFY, body).status_code in {200, 400}
    assert float(Profile.objects.get(app=api_app.app, user_id="u-1").attributes["n"]) == 1.5e308


# -- placeholder user ids -----------------------------------------------------------------

PLACEHOLDERS = [
    "null",
    "NULL",
    "undefined",
    "Undefined",
    "0",
    "-1",
    "anonymous",
    "Anonymous",
    " ",
    "   ",
    "Guest",
    "guest",
    "GUEST",
    " gUeSt ",
    "none",
    "nil",
    "[object Object]",
    0,
    -1,
]


@pytest.mark.parametrize("user_id", PLACEHOLDERS)
def test_placeholder_user_id_in_a_segment_batch(api_app: ApiApp, user_id: Any) -> None:
    body = {"batch": [_track("bad", userId=user_id, anonymousId="anon-bad"), _track("good")]}
    assert _batch_errors(api_app.segment("batch", body)) == {0: "invalid_user_id"}
    assert _stored_message_ids(api_app) == {"good"}
    assert not Device.objects.filter(app=api_app.app, device_id="anon-bad").exists()
    assert not Profile.objects.filter(app=api_app.app, user_id__isnull=False).exists()


@pytest.mark.parametrize("user_id", PLACEHOLDERS)
@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("track", {"anonymousId": "a", "event": "E"}),
        ("track", {"event": "E"}),
        ("identify", {"anonymousId": "a", "traits": {"email": "x@example.com"}}),
        ("screen", {"anonymousId": "a", "name": "Home"}),
        ("alias", {"previousId": "anon-1"}),
    ],
)
def test_placeholder_user_id_on_a_segment_single_route(
    api_app: ApiApp, route: str, message: dict[str, Any], user_id: Any
) -> None:
    _error(api_app.segment(route, {**message, "userId": user_id}), 400, "invalid_user_id")
    _nothing_stored(api_app)


@pytest.mark.parametrize("previous_id", ["null", "undefined", "Guest", " "])
def test_placeholder_previous_id_on_alias(api_app: ApiApp, previous_id: str) -> None:
    body = {"previousId": previous_id, "userId": "u-1"}
    _error(api_app.segment("alias", body), 400, "invalid_user_id")
    _nothing_stored(api_app)


@pytest.mark.parametrize("user_id", PLACEHOLDERS)
def test_placeholder_user_id_in_native_events(api_app: ApiApp, user_id: Any) -> None:
    body = {"events": [_native("bad", user_id=user_id, device_id="dev-bad"), _native("good")]}
    assert _batch_errors(api_app.post(NATIVE_EVENTS, body)) == {0: "invalid_user_id"}
    server = {"events": [_native("bad-server", user_id=user_id, device_id=None)]}
    assert _batch_errors(api_app.post(NATIVE_EVENTS, server, auth=api_app.bearer())) == {
        0: "invalid_user_id"
    }
    assert _stored_message_ids(api_app) == {"good"}
    assert not Device.objects.filter(app=api_app.app, device_id="dev-bad").exists()
    assert not Profile.objects.filter(app=api_app.app, user_id__isnull=False).exists()


@pytest.mark.parametrize("user_id", PLACEHOLDERS)
def test_placeholder_user_id_on_native_identify_and_devices(api_app: ApiApp, user_id: Any) -> None:
    identify = {"device_id": "d", "user_id": user_id, "attributes": {"plan": "pro"}}
    _error(api_app.post(NATIVE_IDENTIFY, identify), 400, "invalid_user_id")
    server = {"user_id": user_id, "attributes": {"plan": "pro"}}
    _error(api_app.post(NATIVE_IDENTIFY, server, auth=api_app.bearer()), 400, "invalid_user_id")
    _error(
        api_app.post(NATIVE_DEVICES, {"device_id": "d", "user_id": user_id}), 400, "invalid_user_id"
    )
    _nothing_stored(api_app)


# -- empty ids ----------------------------------------------------------------------------------


def test_empty_anonymous_id_is_no_id(api_app: ApiApp) -> None:
    # An empty string names no device: the message has no id (and a second one must not 500).
    for _ in range(2):
        _error(api_app.segment("track", {"anonymousId": "", "event": "E"}), 400, "missing_ids")
    _nothing_stored(api_app)


def test_empty_anonymous_id_in_a_batch_is_refused_alone(api_app: ApiApp) -> None:
    # Once a device "" exists, a message naming it again must not poison the whole batch.
    for attempt in range(2):
        body = {"batch": [_track(f"good-{attempt}"), _track(f"empty-{attempt}", anonymousId="")]}
        assert _batch_errors(api_app.segment("batch", body)) == {1: "missing_ids"}
    assert _stored_message_ids(api_app) == {"good-0", "good-1"}
    assert not Device.objects.filter(app=api_app.app, device_id="").exists()


def test_empty_anonymous_id_with_a_user_id_is_a_user_message(api_app: ApiApp) -> None:
    for user_id in ("u-1", "u-2"):
        body = {"anonymousId": "", "userId": user_id, "event": "E", "messageId": user_id}
        assert api_app.segment("track", body).status_code == 200
    assert not Device.objects.filter(app=api_app.app).exists()
    for user_id in ("u-1", "u-2"):
        event = Event.objects.get(app=api_app.app, message_id=user_id)
        assert event.profile.user_id == user_id and event.device_id is None


def test_empty_device_id_on_server_identify_is_identify_by_user_id(api_app: ApiApp) -> None:
    for user_id in ("u-1", "u-2"):
        body = {"device_id": "", "user_id": user_id}
        assert api_app.post(NATIVE_IDENTIFY, body, auth=api_app.bearer()).status_code == 200
    assert not Device.objects.filter(app=api_app.app).exists()
    assert Profile.objects.filter(app=api_app.app, user_id__in=["u-1", "u-2"]).count() == 2


def test_empty_device_id_in_native_events_is_no_id(api_app: ApiApp) -> None:
    for attempt in range(2):
        body = {"events": [_native(f"empty-{attempt}", device_id=""), _native(f"good-{attempt}")]}
        assert _batch_errors(api_app.post(NATIVE_EVENTS, body)) == {0: "missing_ids"}
    assert not Device.objects.filter(app=api_app.app, device_id="").exists()
    assert _stored_message_ids(api_app) == {"good-0", "good-1"}


# -- Segment context values longer than the device columns ------------------------------------


@pytest.mark.parametrize(
    ("context", "field", "limit"),
    [
        ({"os": {"version": "9" * 100}}, "os_version", 64),
        ({"app": {"version": "9" * 100}}, "app_version", 64),
        ({"app": {"build": "9" * 100}}, "app_build", 64),
        ({"library": {"name": "n" * 100}}, "sdk_name", 64),
        ({"library": {"version": "9" * 100}}, "sdk_version", 64),
        ({"timezone": "T" * 100}, "timezone", 64),
        ({"device": {"model": "m" * 300}}, "model", 128),
        ({"device": {"manufacturer": "m" * 300}}, "manufacturer", 128),
        ({"os": {"name": "o" * 300}}, "os_name", 64),
        ({"device": {"type": "t" * 300}}, "platform", 32),
        ({"locale": "l" * 300}, "locale", 35),
    ],
)
def test_long_context_values_are_cut_to_the_device_columns(
    api_app: ApiApp, context: dict[str, Any], field: str, limit: int
) -> None:
    body = {"batch": [_track("long", context=context), _track("other", anonymousId="anon-2")]}
    response = api_app.segment("batch", body)
    assert _batch_errors(response) == {}
    value = getattr(Device.objects.get(app=api_app.app, device_id="anon-1"), field)
    assert 0 < len(value) <= limit


# -- timestamps Python cannot read back ------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z"],
)
def test_extreme_timestamps_leave_a_readable_event(api_app: ApiApp, timestamp: str) -> None:
    body = {"anonymousId": "a", "event": "E", "messageId": "extreme", "timestamp": timestamp}
    response = api_app.segment("track", body)
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        _error(response, 400, "invalid_timestamp")
        _nothing_stored(api_app)
        return
    event = Event.objects.get(app=api_app.app, message_id="extreme")  # must not raise
    assert event.timestamp == event.received_at


def test_extreme_sent_at_skew_is_not_a_500(api_app: ApiApp) -> None:
    body = {
        "anonymousId": "a",
        "event": "E",
        "messageId": "skew",
        "timestamp": "0001-01-01T00:00:00Z",
        "sentAt": "9999-12-31T23:59:59Z",
    }
    assert api_app.segment("track", body).status_code == 200
    event = Event.objects.get(app=api_app.app, message_id="skew")
    assert event.timestamp == event.received_at


# -- sizes: per message, per request, per batch -------------------------------------------------


def test_message_over_32kb_on_a_single_route_refuses_the_request(api_app: ApiApp) -> None:
    body = {"anonymousId": "a", "event": "E", "properties": {"blob": "x" * (33 * 1024)}}
    error = _error(api_app.segment("track", body), 400, "message_too_large")
    assert error["details"] == {"limit_bytes": settings.INGEST_MAX_MESSAGE_BYTES}
    _nothing_stored(api_app)


def _big_segment_batch() -> bytes:
    # 30 messages of 20 KB: each within the message limit, together over 500 KB.
    body = {"batch": [_track(f"m-{i}", properties={"blob": "x" * 20_000}) for i in range(30)]}
    data = orjson.dumps(body)
    assert len(data) > settings.INGEST_MAX_REQUEST_BYTES
    return data


def _big_native_batch() -> bytes:
    body = {"events": [_native(f"m-{i}", properties={"blob": "x" * 20_000}) for i in range(30)]}
    data = orjson.dumps(body)
    assert len(data) > settings.INGEST_MAX_REQUEST_BYTES
    return data


def _too_large(response: Any) -> None:
    error = _error(response, 400, "request_too_large")
    assert error["details"] == {"limit_bytes": settings.INGEST_MAX_REQUEST_BYTES}


@pytest.mark.parametrize(
    ("path", "make"),
    [("/v1/batch", _big_segment_batch), (NATIVE_EVENTS, _big_native_batch)],
)
def test_request_over_500kb_is_refused(api_app: ApiApp, path: str, make: Any) -> None:
    _too_large(_raw(api_app, path, make()))
    _nothing_stored(api_app)


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/track", NATIVE_EVENTS, NATIVE_DEVICES])
def test_declared_content_length_over_the_limit_is_refused_before_reading(
    api_app: ApiApp, path: str
) -> None:
    declared = str(settings.INGEST_MAX_REQUEST_BYTES + 1)
    _too_large(_raw(api_app, path, b'{"batch": []}', CONTENT_LENGTH=declared))
    _nothing_stored(api_app)


@pytest.mark.parametrize("path", ["/v1/batch", NATIVE_EVENTS])
def test_content_length_that_is_not_a_number(api_app: ApiApp, path: str) -> None:
    _error(_raw(api_app, path, b'{"batch": []}', CONTENT_LENGTH="lots"), 400, "invalid_request")
    _nothing_stored(api_app)


@pytest.mark.parametrize(
    ("path", "make"),
    [("/v1/batch", _big_segment_batch), (NATIVE_EVENTS, _big_native_batch)],
)
def test_request_over_500kb_without_content_length_is_refused_while_reading(
    api_app: ApiApp, path: str, make: Any
) -> None:
    _too_large(_call_without_content_length(path, make(), api_app.basic()))
    _nothing_stored(api_app)


def test_small_request_without_content_length_is_read(api_app: ApiApp) -> None:
    body = orjson.dumps({"batch": [_track("no-length")]})
    response = _call_without_content_length("/v1/batch", body, api_app.basic())
    assert response.status_code == 200, response.content
    assert _stored_message_ids(api_app) == {"no-length"}


def test_empty_content_length_through_the_test_client_is_an_empty_body(api_app: ApiApp) -> None:
    # Django reads no body at all without a Content-Length: a 400, never a half-read batch.
    data = _big_segment_batch()
    _error(_raw(api_app, "/v1/batch", data, CONTENT_LENGTH=""), 400, "invalid_json")
    _nothing_stored(api_app)


def test_understated_content_length_is_invalid_json(api_app: ApiApp) -> None:
    data = orjson.dumps({"batch": [_track("cut")]})
    _error(_raw(api_app, "/v1/batch", data, CONTENT_LENGTH="20"), 400, "invalid_json")
    _nothing_stored(api_app)


@pytest.mark.parametrize(("path", "key"), [("/v1/batch", "batch"), (NATIVE_EVENTS, "events")])
def test_more_than_2500_messages_is_batch_too_large(api_app: ApiApp, path: str, key: str) -> None:
    item = (
        {"type": "track", "anonymousId": "a", "event": "E"}
        if key == "batch"
        else {"device_id": "a", "name": "E"}
    )
    body = {key: [item] * (settings.INGEST_MAX_BATCH_MESSAGES + 1)}
    error = _error(api_app.post(path, body), 400, "batch_too_large")
    assert error["details"] == {"limit": settings.INGEST_MAX_BATCH_MESSAGES}
    _nothing_stored(api_app)


def test_exactly_2500_messages_are_accepted(api_app: ApiApp) -> None:
    body = {"batch": [_track(f"m-{i}") for i in range(settings.INGEST_MAX_BATCH_MESSAGES)]}
    response = api_app.segment("batch", body)
    assert _batch_errors(response) == {}
    assert Event.objects.filter(app=api_app.app).count() == settings.INGEST_MAX_BATCH_MESSAGES


# -- Content-Encoding --------------------------------------------------------------------------


def _bomb(size: int = 5 * 1024 * 1024) -> bytes:
    """A valid JSON document of ``size`` bytes (mostly spaces) that gzips to a few KB."""
    return b'{"batch":[' + b" " * size + b'],"events":[]}'


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/track", NATIVE_EVENTS, NATIVE_IDENTIFY])
@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("x-gzip", gzip.compress), ("deflate", zlib.compress)],
)
def test_compressed_body_inflating_past_500kb_is_refused(
    api_app: ApiApp, path: str, encoding: str, compress: Any
) -> None:
    data = compress(_bomb())
    assert len(data) < 50 * 1024
    _too_large(_raw(api_app, path, data, HTTP_CONTENT_ENCODING=encoding))
    _nothing_stored(api_app)


def test_gzip_bomb_without_content_length_is_refused(api_app: ApiApp) -> None:
    data = gzip.compress(_bomb())
    response = _call_without_content_length(
        "/v1/batch", data, {**api_app.basic(), "HTTP_CONTENT_ENCODING": "gzip"}
    )
    _too_large(response)
    _nothing_stored(api_app)


def test_gzip_body_just_within_500kb_inflated_is_read(api_app: ApiApp) -> None:
    raw = orjson.dumps({"batch": [_track("padded")]})
    padded = raw[:-1] + b" " * (settings.INGEST_MAX_REQUEST_BYTES - len(raw)) + b"}"
    assert len(padded) == settings.INGEST_MAX_REQUEST_BYTES
    response = _raw(api_app, "/v1/batch", gzip.compress(padded), HTTP_CONTENT_ENCODING="gzip")
    assert _batch_errors(response) == {}
    assert _stored_message_ids(api_app) == {"padded"}


def _good_gzip() -> bytes:
    return gzip.compress(orjson.dumps({"batch": [_track("gz")], "events": [_native("gz")]}))


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/track", NATIVE_EVENTS, NATIVE_DEVICES])
@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        pytest.param("gzip", b"this is not gzip", id="garbage"),
        pytest.param("gzip", b'{"batch": []}', id="plain-json-claiming-gzip"),
        pytest.param("gzip", b"\x1f\x8b\x08\x00garbage-after-magic", id="gzip-magic-then-garbage"),
        pytest.param("gzip", _good_gzip()[:-12], id="truncated-body"),
        pytest.param("gzip", _good_gzip()[:-4], id="truncated-trailer"),
        pytest.param("gzip", _good_gzip()[:6], id="header-only"),
        pytest.param("gzip", b"", id="empty"),
        pytest.param("gzip", zlib.compress(b'{"batch": []}'), id="zlib-claiming-gzip"),
        pytest.param("deflate", b"not deflate", id="deflate-garbage"),
        pytest.param("deflate", zlib.compress(b'{"batch": []}')[:-3], id="deflate-truncated"),
    ],
)
def test_bad_compressed_body_is_invalid_gzip(
    api_app: ApiApp, path: str, encoding: str, data: bytes
) -> None:
    _error(_raw(api_app, path, data, HTTP_CONTENT_ENCODING=encoding), 400, "invalid_gzip")
    _nothing_stored(api_app)


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/track", NATIVE_EVENTS, NATIVE_IDENTIFY])
@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "gzip, br", "gzip;q=1", "*"])
def test_unsupported_content_encoding_is_415(api_app: ApiApp, path: str, encoding: str) -> None:
    data = gzip.compress(b'{"batch": []}')
    _error(_raw(api_app, path, data, HTTP_CONTENT_ENCODING=encoding), 415, "unsupported_encoding")
    _nothing_stored(api_app)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("GZIP", gzip.compress),
        (" x-gzip ", gzip.compress),
        ("deflate", zlib.compress),
        ("identity", lambda data: data),
        ("", lambda data: data),
    ],
)
def test_supported_encodings_are_read(api_app: ApiApp, encoding: str, compress: Any) -> None:
    segment = compress(orjson.dumps({"batch": [_track("seg")]}))
    native = compress(orjson.dumps({"events": [_native("nat")]}))
    assert _batch_errors(_raw(api_app, "/v1/batch", segment, HTTP_CONTENT_ENCODING=encoding)) == {}
    assert _batch_errors(_raw(api_app, NATIVE_EVENTS, native, HTTP_CONTENT_ENCODING=encoding)) == {}
    assert _stored_message_ids(api_app) == {"seg", "nat"}


# -- methods and content types ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/track",
        "/v1/identify",
        "/v1/screen",
        "/v1/page",
        "/v1/group",
        "/v1/alias",
        "/v1/batch",
        "/v1/import",
    ],
)
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_on_segment_routes_are_405(api_app: ApiApp, path: str, method: str) -> None:
    response = getattr(api_app.client, method)(path, **api_app.basic())
    _error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


@pytest.mark.parametrize(
    "path", [NATIVE_EVENTS, NATIVE_DEVICES, NATIVE_IDENTIFY, "/api/v1/devices/d-1/logout"]
)
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_on_native_routes_are_405(api_app: ApiApp, path: str, method: str) -> None:
    response = getattr(api_app.client, method)(path, **api_app.basic())
    _error(response, 405, "method_not_allowed")
    _nothing_stored(api_app)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/octet-stream",
        "",
    ],
)
def test_wrong_content_type_with_a_json_body_still_works(
    api_app: ApiApp, content_type: str
) -> None:
    track = orjson.dumps({"anonymousId": "a", "event": "E", "messageId": "single"})
    batch = orjson.dumps({"batch": [_track("batched")]})
    events = orjson.dumps({"events": [_native("native")]})
    for path, data in (("/v1/track", track), ("/v1/batch", batch), (NATIVE_EVENTS, events)):
        response = _raw(api_app, path, data, content_type=content_type)
        assert response.status_code == 200, (path, response.content)
    assert _stored_message_ids(api_app) == {"single", "batched", "native"}


# -- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param({"HTTP_AUTHORIZATION": "Basic !!!not-base64"}, id="bad-base64"),
        pytest.param({"HTTP_AUTHORIZATION": "Basic /w=="}, id="basic-not-utf8"),
        pytest.param({"HTTP_AUTHORIZATION": "Digest abc"}, id="unknown-scheme"),
        pytest.param({"HTTP_AUTHORIZATION": "Bearer wk_unknown"}, id="unknown-key"),
        pytest.param({"HTTP_AUTHORIZATION": "Bearer " + "k" * 500}, id="huge-key"),
        pytest.param({}, id="no-key"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/track", NATIVE_EVENTS])
def test_bad_keys_are_401(api_app: ApiApp, path: str, auth: dict[str, str]) -> None:
    body = {"anonymousId": "a", "event": "E", "events": [_native("m")]}
    _error(api_app.post(path, body, auth=auth), 401, "unauthorized")
    _nothing_stored(api_app)


@pytest.mark.parametrize("write_key", [123, ["wk"], {"k": "v"}, None, "", "wk_nope"])
def test_write_key_in_the_body_of_the_wrong_type_is_401(api_app: ApiApp, write_key: Any) -> None:
    body = {"writeKey": write_key, "anonymousId": "a", "event": "E"}
    _error(api_app.segment("track", body, auth={}), 401, "unauthorized")
    _nothing_stored(api_app)
