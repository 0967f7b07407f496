"""Sessions at ingestion (docs/sessions.md), through the Segment and native APIs, read back
from PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from events.models import Event
from profiles.identity import merge_request, merge_undo, resync_run
from profiles.models import Profile
from sessions_timeline.models import ProfileDailyActivity, Session
from tests.conftest import ApiApp
from tests.messages import T0, Send, at, identify, profile_of, track

pytestmark = pytest.mark.django_db


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)


def sessions_of(device: str) -> list[Session]:
    return list(Session.objects.filter(device__device_id=device).order_by("started_at"))


def shape(device: str) -> list[int]:
    return [session.event_count for session in sessions_of(device)]


def test_events_close_in_time_share_a_session_and_idle_gap_starts_another(send: Send) -> None:
    send(track("d1", "A", 0), track("d1", "B", 10), track("d1", "C", 25), track("d1", "D", 80))
    assert shape("d1") == [3, 1]
    first, _ = sessions_of("d1")
    assert (first.started_at, first.last_event_at) == (T0, T0 + minutes(25))
    assert first.duration_seconds == 25 * 60
    assert Profile.objects.get(pk=profile_of("d1").pk).session_count == 2
    assert set(Event.objects.filter(name__in="ABC").values_list("session", flat=True)) == {first.pk}


def test_timeout_is_set_per_app(api_app: ApiApp, send: Send) -> None:
    api_app.app.session_timeout_seconds = 5 * 60
    api_app.app.save()
    send(track("d1", "A", 0), track("d1", "B", 4), track("d1", "C", 10))
    assert shape("d1") == [2, 1]


def test_sdk_session_ids_name_the_session_per_device(api_app: ApiApp, send: Send) -> None:
    send(
        {**track("d1", "A", 0), "context": {"sessionId": 1700000000}},
        {**track("d1", "B", 120), "context": {"sessionId": 1700000000}},  # long gap, same id
        {**track("d1", "C", 121), "context": {"session_id": "other"}},
        {**track("d2", "D", 0), "context": {"sessionId": 1700000000}},  # same id, other device
        {**track("d1", "E", 122), "properties": {"$session_id": "other"}},
    )
    assert shape("d1") == [2, 2]
    assert [s.sdk_session_id for s in sessions_of("d1")] == ["1700000000", "other"]
    assert shape("d2") == [1]
    response = api_app.post(
        "/api/v1/events",
        {"events": [{"device_id": "d1", "name": "F", "session_id": "other", "timestamp": at(123)}]},
    )
    assert response.status_code == 200
    assert shape("d1") == [2, 3]


def test_application_opened_starts_and_backgrounded_ends_a_session(send: Send) -> None:
    send(
        track("d1", "Application Opened", 0),
        {**track("d1", "", 1), "type": "screen", "name": "Home"},
        track("d1", "Application Backgrounded", 2),
        track("d1", "Push Received", 3),  # after the end: a new session
        track("d1", "Application Opened", 4),  # opened again: a new session
        track("d1", "Viewed", 5),
    )
    sessions = sessions_of("d1")
    assert [s.event_count for s in sessions] == [3, 1, 2]
    assert sessions[0].ended_at is not None and sessions[0].screen_count == 1
    assert sessions[0].duration_seconds == 120


def test_late_events_join_the_session_they_fall_in(send: Send) -> None:
    send(track("d1", "A", 0), track("d1", "B", 20))
    send(track("d1", "Late inside", 10), track("d1", "Late before", -15))
    assert shape("d1") == [4]
    assert sessions_of("d1")[0].started_at == T0 - minutes(15)


def test_server_side_events_are_outside_sessions(send: Send) -> None:
    send(identify("d1", "ann", 0), track(None, "Invoice Paid", 1, user="ann"))
    assert Event.objects.get(name="Invoice Paid").session_id is None
    assert Event.objects.get(type="identify").session_id is not None


def test_a_new_person_on_the_device_starts_a_new_session(send: Send) -> None:
    send(identify("shared", "ann", 0), track("shared", "Ann", 1))
    send(identify("shared", "bob", 2), track("shared", "Bob", 3))
    ann_sessions = Session.objects.filter(profile__user_id="ann")
    bob_sessions = Session.objects.filter(profile__user_id="bob")
    assert ann_sessions.count() == 1 and bob_sessions.count() == 1


def test_session_keeps_device_and_app_version(send: Send) -> None:
    send({**track("d1", "A", 0), "context": {"app": {"version": "3.1.0"}}})
    session = sessions_of("d1")[0]
    assert session.app_version == "3.1.0"
    assert session.device.device_id == "d1"


def test_sessions_move_with_a_merge_and_come_back_with_undo(
    send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(identify("phone", "cleo", 0))
    send(track("tablet", "Guest 1", 10), track("tablet", "Guest 2", 100))
    guest = profile_of("tablet")
    cleo = Profile.objects.get(user_id="cleo")
    with django_capture_on_commit_callbacks(execute=True):
        merge = merge_request(source=guest, target=cleo)
    assert Session.objects.filter(profile=cleo).count() == 3
    assert Profile.objects.get(pk=cleo.pk).session_count == 3
    merge_undo(merge_id=merge.pk)
    assert Session.objects.filter(profile=guest).count() == 2
    assert Session.objects.filter(profile=cleo).count() == 1
    assert Profile.objects.get(pk=guest.pk).session_count == 2


def test_resync_rebuilds_the_same_sessions(send: Send) -> None:
    send(
        track("d1", "Application Opened", 0),
        track("d1", "A", 5),
        track("d1", "B", 90),
        track("d1", "C", 95),
    )
    before = [(s.started_at, s.last_event_at, s.event_count) for s in sessions_of("d1")]
    profile = profile_of("d1")
    Session.objects.all().delete()
    Event.objects.update(session=None)
    resync_run(profile=profile)
    after = [(s.started_at, s.last_event_at, s.event_count) for s in sessions_of("d1")]
    assert after == before == [(T0, T0 + minutes(5), 2), (T0 + minutes(90), T0 + minutes(95), 2)]
    assert Event.objects.filter(session__isnull=True).count() == 0
    assert Profile.objects.get(pk=profile.pk).session_count == 2


def test_daily_activity_counts_events_per_day(send: Send) -> None:
    send(track("d1", "A", 0), track("d1", "B", 1), track("d1", "C", 60 * 24 + 1))
    profile = profile_of("d1")
    counts = dict(ProfileDailyActivity.objects.filter(profile=profile).values_list("day", "events"))
    assert sum(counts.values()) == 3 and len(counts) == 2
    send(track("d1", "A", 0))  # a retry of the same message: nothing counted twice
    assert (
        sum(ProfileDailyActivity.objects.filter(profile=profile).values_list("events", flat=True))
        == 3
    )
