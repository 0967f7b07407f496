"""The timeline read model and its API: newest first, sessions with their events and
standalone events interleaved, keyset pages, and both histories interleaved after a merge."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from profiles.authentication import clear_app_key_cache
from profiles.identity import merge_request
from profiles.models import Profile
from sessions_timeline.api.views import item_json
from sessions_timeline.selectors import EVENTS_PER_SESSION, timeline_page
from tests.conftest import ApiApp
from tests.messages import Send, identify, profile_of, session_history, track

pytestmark = pytest.mark.django_db


def _walk(profile: Profile, limit: int) -> list[tuple[str, str]]:
    """Every item of the timeline, page by page: (kind, first event name)."""
    seen: list[tuple[str, str]] = []
    cursor = None
    for _ in range(100):
        page = timeline_page(profile=profile, cursor=cursor, limit=limit)
        for item in page.items:
            if item.session is not None:
                seen.append(("session", item.events[0].name if item.events else ""))
            else:
                assert item.event is not None
                seen.append(("event", item.event.name))
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("pagination does not end")


def test_newest_first_sessions_and_standalone_events_interleaved(send: Send) -> None:
    send(
        identify("d1", "ann", 0),
        track("d1", "Morning", 1),
        track(None, "Invoice Paid", 120, user="ann"),
        track("d1", "Evening", 600),
    )
    ann = Profile.objects.get(user_id="ann")
    page = timeline_page(profile=ann, limit=10)
    assert [item.kind for item in page.items] == ["session", "event", "session"]
    assert [event.name for event in page.items[0].events] == ["Evening"]
    assert page.items[1].event is not None and page.items[1].event.name == "Invoice Paid"
    assert [event.name for event in page.items[2].events] == ["Morning", ""]  # identify too
    assert page.next_cursor is None


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_pages_cover_everything_once_in_order(send: Send, limit: int) -> None:
    messages = []
    for n in range(6):
        messages.append(track("d1", f"Session {n}", n * 60))
        messages.append(track(None, f"Server {n}", n * 60 + 30, user="bea"))
    send(identify("d1", "bea", -1), *messages)
    bea = Profile.objects.get(user_id="bea")
    walked = _walk(bea, limit)
    assert walked == _walk(bea, 100)
    assert len(walked) == 12
    assert walked[0] == ("event", "Server 5") and walked[-1] == ("session", "Session 0")


def test_a_session_shows_its_newest_events_and_how_many_more(send: Send) -> None:
    send(*(track("d1", f"E{n}", n / 10) for n in range(30)))
    item = timeline_page(profile=profile_of("d1"), limit=5).items[0]
    assert EVENTS_PER_SESSION == 5
    assert [event.name for event in item.events] == ["E29", "E28", "E27", "E26", "E25"]
    assert item.more_events == 25


def test_timeline_api_shows_a_sessions_newest_5_events_and_how_many_more(
    api_app: ApiApp, send: Send
) -> None:
    send(
        identify("d1", "fay", 0),
        *({**track("d1", f"E{n}", 1 + n / 10), "properties": {"n": n}} for n in range(11)),
    )
    response = api_app.get("/api/v1/profiles/fay/timeline")
    assert response.status_code == 200, response.content
    [session] = response.json()["items"]
    assert session["kind"] == "session" and session["event_count"] == 12  # the identify too
    assert [event["name"] for event in session["events"]] == ["E10", "E9", "E8", "E7", "E6"]
    assert session["more_events"] == 7
    assert set(session["events"][0]) == {
        "message_id",
        "type",
        "name",
        "timestamp",
        "properties",
        "source",
    }
    assert session["events"][0]["properties"] == {"n": 10}
    assert session["events"][0]["source"] == "sdk" and session["events"][0]["type"] == "track"
    # All of them from the events API over the session's span (end is exclusive: just after).
    last = datetime.fromisoformat(session["last_event_at"])
    span = urlencode(
        {
            "start": session["started_at"],
            "end": (last + timedelta(microseconds=1)).isoformat(),
            "limit": 200,
        }
    )
    events = api_app.get(f"/api/v1/profiles/fay/events?{span}").json()["events"]
    assert [event["name"] for event in events] == [f"E{n}" for n in range(10, -1, -1)] + [""]
    exclusive = urlencode({"start": session["started_at"], "end": session["last_event_at"]})
    assert len(api_app.get(f"/api/v1/profiles/fay/events?{exclusive}").json()["events"]) == 11


def test_events_after_a_backgrounded_event_of_the_same_sdk_session_are_shown(
    send: Send,
) -> None:
    """ended_at is the Application Backgrounded; an event with the same SDK session id after
    it still belongs to the session, and is its newest."""
    sdk = {"context": {"sessionId": "s-1"}}
    send(
        {**track("d1", "A", 0), **sdk},
        {**track("d1", "Application Backgrounded", 1), **sdk},
        {**track("d1", "Resumed", 2), **sdk},
    )
    [item] = timeline_page(profile=profile_of("d1")).items
    assert item.session is not None and item.session.event_count == 3
    assert [event.name for event in item.events] == ["Resumed", "Application Backgrounded", "A"]
    assert item.more_events == 0


def test_timeline_queries_do_not_depend_on_events_per_session(api_app: ApiApp, send: Send) -> None:
    """Three statements for a page whatever the sessions hold, events read without their
    context (and nothing loads a deferred column afterwards, one query per event)."""
    counts = []
    for user, per_session in (("few", 3), ("many", 30)):
        profile = session_history(send, user, per_session)
        with CaptureQueriesContext(connection) as queries:
            page = timeline_page(profile=profile, limit=20)
            body = [item_json(item) for item in page.items]
        assert [item["kind"] for item in body] == ["event", "session"] * 4
        sessions = [item for item in page.items if item.session is not None]
        assert [len(item.events) for item in sessions] == [min(per_session, 5)] * 3 + [
            min(per_session + 1, 5)
        ]
        assert sessions[0].more_events == max(0, per_session - 5)
        events = [event for item in sessions for event in item.events] + [
            item.event for item in page.items if item.event is not None
        ]
        assert len(events) == sum(len(item.events) for item in sessions) + 4
        for event in events:
            assert "context" in event.get_deferred_fields()
        sql = [
            query["sql"]
            for query in queries.captured_queries
            # the planner setting around the events' query, and its savepoint
            if not query["sql"].startswith(("SET LOCAL", "SAVEPOINT", "RELEASE SAVEPOINT"))
        ]
        assert len(sql) == 3, sql
        assert len(queries.captured_queries) == 7, queries.captured_queries
        assert not [text for text in sql if '"context"' in text or "*" in text], sql
        clear_app_key_cache()  # each request looks its key up
        with CaptureQueriesContext(connection) as api_queries:
            response = api_app.get(f"/api/v1/profiles/{user}/timeline")
        assert response.status_code == 200, response.content
        assert len(response.json()["items"]) == 8
        counts.append(len(api_queries))
    assert counts[0] == counts[1], counts


def test_after_a_merge_both_histories_interleave_by_time(
    send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(
        identify("phone", "cal", 0),
        track("phone", "Phone early", 1),
        track("phone", "Phone late", 300),
    )
    send(track("tablet", "Tablet middle", 150))
    with django_capture_on_commit_callbacks(execute=True):
        merge_request(source=profile_of("tablet"), target=Profile.objects.get(user_id="cal"))
    walked = _walk(Profile.objects.get(user_id="cal"), 1)
    assert walked == [
        ("session", "Phone late"),
        ("session", "Tablet middle"),
        ("session", "Phone early"),
    ]


def test_timeline_api_by_user_id_and_public_id(api_app: ApiApp, send: Send) -> None:
    send(identify("d1", "dan/with slash", 0), *(track("d1", f"E{n}", n * 60) for n in range(3)))
    first = api_app.get("/api/v1/profiles/dan%2Fwith%20slash/timeline?limit=2")
    assert first.status_code == 200, first.content
    body = first.json()
    assert [item["kind"] for item in body["items"]] == ["session", "session"]
    assert body["items"][0]["events"][0]["name"] == "E2"
    assert body["items"][0]["device"]["device_id"] == "d1"
    second = api_app.get(
        f"/api/v1/profiles/dan%2Fwith%20slash/timeline?limit=2&cursor={body['next_cursor']}"
    )
    assert [item["events"][-1]["name"] for item in second.json()["items"]] == [""]
    assert second.json()["next_cursor"] is None
    guest_device = "guest-1"
    send(track(guest_device, "Guest", 0))
    guest = profile_of(guest_device)
    by_id = api_app.get(f"/api/v1/profiles/by-id/{guest.public_id}/timeline")
    assert by_id.status_code == 200
    assert by_id.json()["items"][0]["events"][0]["name"] == "Guest"


def test_timeline_api_errors(api_app: ApiApp, send: Send) -> None:
    send(identify("d1", "eli", 0))
    assert (
        api_app.get(
            "/api/v1/profiles/eli/timeline", auth=api_app.bearer(api_app.keys.write_key)
        ).status_code
        == 403
    )
    assert api_app.get("/api/v1/profiles/nobody/timeline").status_code == 404
    bad_cursor = api_app.get("/api/v1/profiles/eli/timeline?cursor=not-a-cursor")
    assert bad_cursor.status_code == 400 and bad_cursor.json()["code"] == "invalid_cursor"
    bad_limit = api_app.get("/api/v1/profiles/eli/timeline?limit=many")
    assert bad_limit.status_code == 400 and bad_limit.json()["code"] == "invalid_limit"


def test_the_planner_setting_does_not_outlive_the_timeline_query(send: Send) -> None:
    """The timeline turns bitmap scans off for its events' query only (SET LOCAL inside a
    savepoint or transaction); the queries that follow plan as usual."""
    send(identify("phone", "ann", 0), track("phone", "Opened", 1))
    profile = profile_of("phone")
    with transaction.atomic(), connection.cursor() as cursor:
        assert timeline_page(profile=profile).items
        cursor.execute("SHOW enable_bitmapscan")
        assert cursor.fetchone()[0] == "on"
    timeline_page(profile=profile)
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_bitmapscan")
        assert cursor.fetchone()[0] == "on"
