"""The server API on profiles, over HTTP: get, PUT/PATCH upserts through identity, events
pages, export, routes, and bad input (always a 4xx JSON error, never a 500)."""

from __future__ import annotations

import gzip
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from events.models import Event
from profiles.identity import merge_request
from profiles.models import Device, Profile, ProfileAlias, ProfileMerge, QuarantinedAttribute
from profiles.selectors import profiles_filter
from tests.conftest import ApiApp
from tests.messages import T0, Send, at, identify, profile_of, track
from tests.profiles.profile_api import call, configure, error, ok, patch, profile_url

pytestmark = pytest.mark.django_db


def _nothing_stored(api_app: ApiApp) -> None:
    assert not Profile.objects.filter(app=api_app.app).exists()
    assert not QuarantinedAttribute.objects.exists()


# -- get, PUT, PATCH -------------------------------------------------------------------------


def test_patch_creates_an_identified_profile_then_updates_it(api_app: ApiApp) -> None:
    body = ok(patch(api_app, "u-1", {"attributes": {"email": "ada@example.com", "plan": "free"}}))
    profile = Profile.objects.get(app=api_app.app, user_id="u-1")
    assert body["created"] is True and body["kind"] == "identified"
    assert body["profile_id"] == str(profile.public_id)
    assert body["attributes"] == {"email": "ada@example.com", "plan": "free"}
    body = ok(patch(api_app, "u-1", {"attributes": {"plan": "pro"}}))
    assert body["created"] is False
    profile.refresh_from_db()
    assert profile.attributes == {"email": "ada@example.com", "plan": "pro"}
    assert ok(api_app.get(profile_url("u-1")))["attributes"] == profile.attributes
    assert Profile.objects.filter(app=api_app.app).count() == 1
    assert not Event.objects.exists()  # a profile update is not an event


def test_put_replaces_the_attributes_but_keeps_set_once_fields(api_app: ApiApp) -> None:
    ok(
        patch(
            api_app,
            "u-1",
            {
                "attributes": {
                    "email": "ada@example.com",
                    "plan": "free",
                    "created_at": "2020-01-01T00:00:00Z",
                    "logins": 4,
                }
            },
        )
    )
    body = ok(
        call(
            api_app,
            "PUT",
            profile_url("u-1"),
            {
                "attributes": {"plan": "pro", "created_at": "2024-01-01T00:00:00Z"},
                "operations": [{"op": "increment", "key": "logins", "value": 1}],
            },
        )
    )
    assert body["created"] is False
    assert Profile.objects.get(user_id="u-1").attributes == {
        "plan": "pro",
        "created_at": "2020-01-01T00:00:00Z",  # set-once: kept, and not overwritten
        "logins": 5,  # named by an operation: kept, then incremented
    }


def test_put_creates_too(api_app: ApiApp) -> None:
    body = ok(call(api_app, "PUT", profile_url("new-user"), {"attributes": {"plan": "pro"}}))
    assert body["created"] is True
    assert Profile.objects.get(user_id="new-user").attributes == {"plan": "pro"}


def test_writes_go_through_identity_aliases_and_merged_ids_reach_the_live_profile(
    api_app: ApiApp, send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(identify("d1", "alice", 0), identify("d2", "alice-work", 0))
    send({"type": "alias", "previousId": "old-alice", "userId": "alice", "messageId": "al"})
    assert ProfileAlias.objects.get(alias="old-alice").profile.user_id == "alice"
    alice = Profile.objects.get(user_id="alice")
    with django_capture_on_commit_callbacks(execute=True):
        merge_request(source=Profile.objects.get(user_id="alice-work"), target=alice, force=True)
    ok(patch(api_app, "old-alice", {"attributes": {"via": "alias"}}))
    ok(patch(api_app, "alice-work", {"attributes": {"via_merged": True}}))
    alice.refresh_from_db()
    assert alice.attributes == {"via": "alias", "via_merged": True}
    assert ok(api_app.get(profile_url("old-alice")))["profile_id"] == str(alice.public_id)
    assert Profile.objects.filter(app=api_app.app, merged_into__isnull=True).count() == 1


def test_a_guest_is_updated_by_its_public_id(api_app: ApiApp, send: Send) -> None:
    send(track("d1", "Opened", 0))
    guest = profile_of("d1")
    url = f"/api/v1/profiles/by-id/{guest.public_id}"
    body = ok(call(api_app, "PATCH", url, {"attributes": {"plan": "trial", "age": "x"}}))
    assert body["user_id"] is None and body["created"] is False
    configure(api_app, "age", "number")
    body = ok(call(api_app, "PATCH", url, {"attributes": {"age": "x", "color": "red"}}))
    assert body["attribute_errors"][0]["key"] == "age"
    ok(call(api_app, "PUT", url, {"attributes": {"color": "blue"}}))
    guest.refresh_from_db()
    assert guest.attributes == {"color": "blue"}
    assert ok(api_app.get(url))["attributes"] == {"color": "blue"}
    error(call(api_app, "PATCH", f"/api/v1/profiles/by-id/{uuid.uuid4()}", {}), 404, "not_found")


def test_user_ids_that_cannot_name_a_person_are_refused(api_app: ApiApp) -> None:
    for user_id in ("undefined", "u" * 256, "a\x00b"):
        error(patch(api_app, user_id, {"attributes": {"a": 1}}), 400, "invalid_user_id")
        error(call(api_app, "PUT", profile_url(user_id), {}), 400, "invalid_user_id")
        for suffix in ("", "/events", "/export"):
            error(api_app.get(profile_url(user_id, suffix)), 404, "not_found")
        error(call(api_app, "DELETE", profile_url(user_id)), 404, "not_found")
    _nothing_stored(api_app)


# -- bad input -------------------------------------------------------------------------------

BAD_BODIES = [
    pytest.param(b"{not json", "invalid_json", id="malformed-json"),
    pytest.param(b"", "invalid_json", id="empty-body"),
    pytest.param(b"[1, 2]", "invalid_json", id="array-body"),
    pytest.param(b'"text"', "invalid_json", id="string-body"),
    pytest.param(b"\xff\xfe{}", "invalid_utf8", id="not-utf8"),
    pytest.param({"attributes": ["a"]}, "invalid_type", id="attributes-list"),
    pytest.param({"attributes": "a=1"}, "invalid_type", id="attributes-string"),
    pytest.param({"operations": {"op": "set"}}, "invalid_type", id="operations-object"),
    pytest.param({"operations": ["set"]}, "invalid_type", id="operation-string"),
    pytest.param({"operations": [{"op": "drop", "key": "k"}]}, "invalid_operation", id="bad-op"),
    pytest.param({"operations": [{"op": "set", "key": 3}]}, "invalid_operation", id="key-number"),
    pytest.param(
        {"operations": [{"op": "replace", "key": "k"}]}, "invalid_operation", id="replace"
    ),
    pytest.param(
        {"operations": [{"op": "increment", "key": "n", "value": "1"}]},
        "invalid_operation",
        id="increment-string",
    ),
    pytest.param({"traits": {"a": 1}}, "unknown_field", id="unknown-field"),
    pytest.param({"attributes": {"a": "x\u0000y"}}, "nul_character", id="nul"),
    pytest.param(b'{"attributes": {"n": 1e400}}', "invalid_number", id="infinite"),
    pytest.param(b'{"attributes": ' * 40 + b"1" + b"}" * 40, "json_too_deep", id="too-deep"),
]


@pytest.mark.parametrize(("body", "code"), BAD_BODIES)
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_bad_bodies_are_400_and_store_nothing(
    api_app: ApiApp, body: Any, code: str, method: str
) -> None:
    error(call(api_app, method, profile_url("u-1"), body), 400, code)
    _nothing_stored(api_app)


def test_oversized_and_gzip_bodies(api_app: ApiApp) -> None:
    huge = {"attributes": {f"k{i}": "x" * 1000 for i in range(600)}}
    error(call(api_app, "PATCH", profile_url("u-1"), huge), 400, "request_too_large")
    bomb = gzip.compress(b'{"attributes": {"a": "' + b"x" * 2_000_000 + b'"}}')
    response = call(api_app, "PATCH", profile_url("u-1"), bomb, HTTP_CONTENT_ENCODING="gzip")
    error(response, 400, "request_too_large")
    _nothing_stored(api_app)
    small = gzip.compress(b'{"attributes": {"a": 1}}')
    ok(call(api_app, "PATCH", profile_url("u-1"), small, HTTP_CONTENT_ENCODING="gzip"))


def test_keys_and_methods(api_app: ApiApp, other_app: ApiApp) -> None:
    url = profile_url("u-1")
    write_key = api_app.bearer(api_app.keys.write_key)
    error(call(api_app, "PATCH", url, {"attributes": {}}, auth=write_key), 403, "forbidden")
    error(call(api_app, "PATCH", url, {"attributes": {}}, auth={}), 401, "unauthorized")
    error(call(api_app, "DELETE", url, auth=write_key), 403, "forbidden")
    error(call(api_app, "GET", profile_url("u-1", "/export"), auth=write_key), 403, "forbidden")
    error(call(api_app, "POST", url, {"attributes": {}}), 405, "method_not_allowed")
    _nothing_stored(api_app)
    ok(patch(other_app, "u-1", {"attributes": {"a": 1}}))
    error(api_app.get(url), 404, "not_found")  # another app's profile is not there


# -- events ----------------------------------------------------------------------------------


def _events_of_alice(send: Send) -> None:
    send(identify("d1", "alice", 0))
    send(*(track("d1", "Viewed" if n % 2 else "Bought", n, mid=f"e{n}") for n in range(1, 8)))
    # Two events at the very same time: the id breaks the tie.
    send(track("d1", "Same", 10, mid="same-a"), track("d1", "Same", 10, mid="same-b"))
    send(track(None, "Invoice Paid", 20, user="alice", mid="server"))


def test_events_are_paged_newest_first_without_gaps_or_repeats(api_app: ApiApp, send: Send) -> None:
    _events_of_alice(send)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = ok(api_app.get(profile_url("alice", "/events") + query))
        seen += [event["message_id"] for event in body["events"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = list(
        Event.objects.filter(profile__user_id="alice")
        .order_by("-timestamp", "-id")
        .values_list("message_id", flat=True)
    )
    assert seen == expected and len(seen) == 11 and pages == 4
    assert seen[0] == "server"
    first = ok(api_app.get(profile_url("alice", "/events") + "?limit=1"))["events"][0]
    assert first["source"] == "sdk" and first["device_id"] is None  # the server event
    assert set(first) == {
        "message_id",
        "type",
        "name",
        "properties",
        "context",
        "timestamp",
        "original_timestamp",
        "received_at",
        "source",
        "device_id",
    }


def test_events_filters(api_app: ApiApp, send: Send) -> None:
    _events_of_alice(send)
    url = profile_url("alice", "/events")
    by_name = ok(api_app.get(url + "?name=Bought"))["events"]
    assert {e["name"] for e in by_name} == {"Bought"} and len(by_name) == 3
    start = (T0 + timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
    end = (T0 + timedelta(minutes=6)).isoformat().replace("+00:00", "Z")
    window = ok(api_app.get(f"{url}?start={start}&end={end}"))["events"]
    assert [e["message_id"] for e in window] == ["e5", "e4", "e3"]
    assert ok(api_app.get(f"{url}?name=Viewed&start={start}&limit=1"))["next_cursor"]
    by_device = ok(api_app.get(url + "?name=Bought&limit=1"))["events"][0]
    assert by_device["device_id"] == "d1"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=0", "invalid_limit"),
        ("limit=201", "invalid_limit"),
        ("limit=many", "invalid_limit"),
        ("cursor=not-a-cursor", "invalid_cursor"),
        ("cursor=WzEsMl0", "invalid_cursor"),
        ("start=yesterday", "invalid_timestamp"),
        ("end=2024-13-01", "invalid_timestamp"),
        ("name=" + "n" * 300, "invalid_name"),
        ("name=a%00b", "invalid_name"),
        ("start=2024-01-01T00:00:00%2B99:00", "invalid_timestamp"),
    ],
)
def test_events_bad_queries(api_app: ApiApp, send: Send, query: str, code: str) -> None:
    send(identify("d1", "alice", 0))
    error(api_app.get(profile_url("alice", "/events") + "?" + query), 400, code)


def test_events_include_a_running_merges_source(api_app: ApiApp, send: Send) -> None:
    send(identify("d1", "bob", 0), track("d2", "Guest thing", 1, mid="g1"))
    # The merge is recorded but its task has not run (send runs on-commit work: not here).
    api_app.segment("batch", {"batch": [identify("d2", "bob", 2)]})
    merge = ProfileMerge.objects.get()
    assert merge.status == "pending"
    events = ok(api_app.get(profile_url("bob", "/events")))["events"]
    assert "g1" in {e["message_id"] for e in events}


def test_routes_user_ids_with_slashes_and_suffix_like_names(api_app: ApiApp, send: Send) -> None:
    send(identify("d1", "team/alice", 0), track("d1", "Opened", 1), identify("d2", "events", 0))
    assert ok(api_app.get(profile_url("team/alice")))["user_id"] == "team/alice"
    assert len(ok(api_app.get(profile_url("team/alice", "/events")))["events"]) == 2
    assert ok(api_app.get(profile_url("events")))["user_id"] == "events"
    assert ok(api_app.get(profile_url("events", "/events")))["events"][0]["type"] == "identify"
    exported = ok(api_app.get(profile_url("team/alice", "/export")))
    assert exported["profile"]["user_id"] == "team/alice"
    guest_free = Profile.objects.get(user_id="team/alice")
    by_id = f"/api/v1/profiles/by-id/{guest_free.public_id}"
    assert ok(api_app.get(by_id + "/events"))["events"][0]["name"] == "Opened"
    assert ok(api_app.get(by_id + "/export"))["profile"]["user_id"] == "team/alice"
    error(api_app.get("/api/v1/profiles/by-id/not-a-uuid/events"), 404, "not_found")
    error(api_app.get(profile_url("nobody", "/export")), 404, "not_found")


# -- export ----------------------------------------------------------------------------------


def test_export_holds_everything_on_the_person(
    api_app: ApiApp, send: Send, monkeypatch: pytest.MonkeyPatch
) -> None:
    import profiles.selectors

    monkeypatch.setattr(profiles.selectors, "EXPORT_CHUNK", 2)  # several internal pages
    configure(api_app, "age", "number")
    send(
        {**identify("phone", "ada", 0, {"email": "ada@example.com", "age": "old"})},
        track("phone", "Opened", 1, mid="o1"),
        track("phone", "Viewed", 2, mid="v1"),
    )
    send(track("tablet", "Guest", 3, mid="g1"))
    send(identify("tablet", "ada", 4))  # the tablet's guest is merged into Ada
    send({"type": "alias", "previousId": "ada-old", "userId": "ada", "messageId": "al"})
    send(track(None, "Invoice Paid", 5, user="ada", mid="inv"))
    ada = Profile.objects.get(user_id="ada")
    tombstone = Profile.objects.get(merged_into=ada)
    document = ok(api_app.get(profile_url("ada", "/export")))
    assert document["pii_masked"] is False
    assert document["profile"]["profile_id"] == str(ada.public_id)
    assert document["attributes"] == {"email": "ada@example.com"}
    assert set(document["attribute_times"]) == {"email"}
    assert [p["profile_id"] for p in document["merged_profiles"]] == [str(tombstone.public_id)]
    assert document["aliases"][0]["alias"] == "ada-old"
    assert {d["device_id"] for d in document["devices"]} == {"phone", "tablet"}
    assert {(b["device_id"], b["reason"]) for b in document["bindings"]} >= {
        ("phone", "first_seen"),
        ("tablet", "first_seen"),
        ("tablet", "identify"),
    }
    assert document["sessions"] and all(s["device_id"] for s in document["sessions"])
    (merge,) = document["merges"]
    assert (merge["source"], merge["target"], merge["status"]) == (
        str(tombstone.public_id),
        str(ada.public_id),
        "done",
    )
    assert "attributes" in merge["source_snapshot"] and "attributes" in merge["target_prior"]
    assert [(q["key"], q["value"]) for q in document["quarantine"]] == [("age", "old")]
    message_ids = [event["message_id"] for event in document["events"]]
    expected = set(Event.objects.filter(profile=ada).values_list("message_id", flat=True))
    assert set(message_ids) == expected and len(message_ids) == len(expected) == 7
    assert {"o1", "v1", "g1", "inv", "al"} <= set(message_ids)
    assert sum(d["events"] for d in document["daily_activity"]) == 7


def test_export_is_a_download_stream(api_app: ApiApp, send: Send) -> None:
    send(identify("d1", "ada", 0))
    response = api_app.get(profile_url("ada", "/export"))
    assert response.streaming and response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]


# -- filters (what cohorts use) ---------------------------------------------------------------


def test_profiles_filter(api_app: ApiApp, send: Send) -> None:
    configure(api_app, "age", "number")
    configure(api_app, "tags", "string_list")
    send(
        identify("d1", "a", 0, {"email": "a@x.io", "age": 30, "createdAt": at(0), "tags": ["vip"]}),
        identify("d2", "b", 0, {"email": "b@x.io", "age": "41", "birthday": "1990-01-02"}),
        identify("d3", "c", 0, {"email": "c@x.io", "age": 18, "createdAt": at(60)}),
    )

    def users(field: str, op: str, value: Any = None) -> list[str]:
        found = profiles_filter(app=api_app.app, field_key=field, op=op, value=value)
        return sorted(str(user_id) for user_id in found.values_list("user_id", flat=True))

    assert users("email", "eq", "b@x.io") == ["b"]
    assert users("age", "gte", "30") == ["a", "b"]
    assert users("age", "lt", 30) == ["c"]
    assert users("created_at", "gt", at(30)) == ["c"]
    assert users("created_at", "lte", at(0)) == ["a"]
    assert users("birthday", "lt", "2000-01-01") == ["b"]
    assert users("tags", "eq", "vip") == ["a"]
    assert users("birthday", "exists") == ["b"]
    from pushapp.api import ApplicationError

    for field, op, value in [("age", "gt", "old"), ("email", "gt", "a"), ("age", "near", 1)]:
        with pytest.raises(ApplicationError) as refused:
            users(field, op, value)
        assert refused.value.code == "invalid_filter"


# -- the schema -----------------------------------------------------------------------------


def test_the_schema_documents_every_profile_operation() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert set(paths["/api/v1/profiles/{user_id}"]) >= {"get", "put", "patch", "delete"}
    assert set(paths["/api/v1/profiles/by-id/{public_id}"]) >= {"get", "put", "patch", "delete"}
    for suffix in ("/events", "/export"):
        assert "get" in paths["/api/v1/profiles/{user_id}" + suffix]
        assert "get" in paths["/api/v1/profiles/by-id/{public_id}" + suffix]
    patch_op = paths["/api/v1/profiles/{user_id}"]["patch"]
    assert "requestBody" in patch_op
    events = paths["/api/v1/profiles/{user_id}/events"]["get"]
    assert {p["name"] for p in events["parameters"]} >= {"cursor", "limit", "name", "start", "end"}


def test_device_rows_are_untouched_by_profile_writes(api_app: ApiApp, send: Send) -> None:
    send(identify("d1", "u-1", 0))
    before = Device.objects.get(device_id="d1").updated_at
    ok(patch(api_app, "u-1", {"attributes": {"x": 1}}))
    assert Device.objects.get(device_id="d1").updated_at == before
