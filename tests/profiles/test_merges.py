"""Staff merges, previews and exact undo, on PostgreSQL; the merge task runs on commit."""

from __future__ import annotations

from typing import Any

import pytest

from events.models import Event
from profiles.identity import IdentityError, merge_preview, merge_request, merge_undo
from profiles.models import Device, Profile, ProfileAlias, ProfileMerge
from tests.conftest import ApiApp
from tests.messages import Send, identify, names, profile_of, track

pytestmark = pytest.mark.django_db


def _rows(profile: Profile) -> tuple:
    fresh = Profile.objects.get(pk=profile.pk)
    return (
        fresh.user_id,
        fresh.kind,
        fresh.merged_into_id,
        fresh.attributes,
        fresh.event_count,
        fresh.first_seen_at,
        sorted(Event.objects.filter(profile=fresh).values_list("message_id", flat=True)),
        sorted(Device.objects.filter(profile=fresh).values_list("device_id", flat=True)),
    )


def test_two_identified_profiles_need_force(
    send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(
        identify("d1", "alice", 0, {"plan": "pro"}), identify("d2", "alice-work", 0, {"team": "x"})
    )
    alice, work = Profile.objects.get(user_id="alice"), Profile.objects.get(user_id="alice-work")
    with pytest.raises(IdentityError) as refused:
        merge_request(source=work, target=alice)
    assert refused.value.code == "force_required"
    with django_capture_on_commit_callbacks(execute=True):
        merge = merge_request(source=work, target=alice, force=True)
    merge.refresh_from_db()
    assert merge.status == "done" and merge.forced
    assert ProfileAlias.objects.get(alias="alice-work").profile == alice
    assert Profile.objects.get(pk=alice.pk).attributes == {"plan": "pro", "team": "x"}
    # Data sent later with the source's user id reaches the target.
    send(track(None, "Backend", 3, user="alice-work"))
    assert "Backend" in names(alice)


def test_preview_counts_and_conflicts(send: Send) -> None:
    send(identify("d1", "bob", 0, {"plan": "pro", "city": "Oslo"}))
    send(track("d2", "Guest 1", 1), track("d2", "Guest 2", 2))
    guest = profile_of("d2")
    Profile.objects.filter(pk=guest.pk).update(attributes={"plan": "free", "color": "red"})
    preview = merge_preview(
        source=Profile.objects.get(pk=guest.pk), target=Profile.objects.get(user_id="bob")
    )
    assert (preview.events, preview.devices, preview.sessions) == (2, 1, 1)
    assert preview.conflicts == {"plan": ("free", "pro")}
    assert preview.needs_force is False
    assert not ProfileMerge.objects.exists()  # a dry run writes nothing


def test_merge_into_itself_or_its_own_tombstone_is_refused(send: Send) -> None:
    send(identify("d1", "carl", 0))
    send(track("d2", "Guest", 1), identify("d2", "carl", 2))
    carl = Profile.objects.get(user_id="carl")
    tombstone = Profile.objects.get(merged_into=carl)
    for source, target in ((carl, carl), (tombstone, carl), (carl, tombstone)):
        with pytest.raises(IdentityError) as refused:
            merge_request(source=source, target=target)
        assert refused.value.code == "already_merged"


def test_merge_into_a_tombstone_goes_to_the_live_profile(
    send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(identify("d1", "dora", 0))
    send(track("d2", "Guest A", 1), identify("d2", "dora", 2))
    dora = Profile.objects.get(user_id="dora")
    tombstone = Profile.objects.get(merged_into=dora)
    send(track("d3", "Guest B", 3))
    other_guest = profile_of("d3")
    with django_capture_on_commit_callbacks(execute=True):
        merge = merge_request(source=other_guest, target=tombstone)
    assert merge.target_id == dora.pk
    assert names(dora) == {"Guest A", "Guest B"}


def test_undo_restores_both_profiles_exactly(
    send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(identify("phone", "erin", 0, {"plan": "pro"}), track("phone", "Erin phone", 1))
    send(track("tablet", "Guest browse", 2), track("laptop", "Guest laptop", 2))
    guest = profile_of("tablet")
    # The guest used two devices (say a staff merge joined them earlier).
    Device.objects.filter(device_id="laptop").update(profile=guest)
    Event.objects.filter(name="Guest laptop").update(profile=guest)
    Profile.objects.filter(pk=guest.pk).update(
        attributes={"plan": "free", "color": "red"},
        attribute_times={"plan": "2020-01-01T00:00:00+00:00", "color": "2020-01-01T00:00:00+00:00"},
        event_count=2,
    )
    erin = Profile.objects.get(user_id="erin")
    guest_before, erin_before = _rows(guest), _rows(erin)

    with django_capture_on_commit_callbacks(execute=True):
        merge = merge_request(source=guest, target=erin)
    assert names(erin) == {"Erin phone", "Guest browse", "Guest laptop"}
    assert Profile.objects.get(pk=erin.pk).attributes == {"plan": "pro", "color": "red"}
    # Something arrives after the merge from a device the merge moved.
    send(track("laptop", "Laptop after merge", 30, mid="after-merge"))
    assert "Laptop after merge" in names(erin)

    merge_undo(merge_id=merge.pk)
    merge.refresh_from_db()
    assert merge.status == "undone"
    guest_after, erin_after = _rows(guest), _rows(erin)
    assert erin_after == erin_before
    # The guest is back as it was, plus what arrived since on its device.
    assert guest_after[:4] == guest_before[:4]
    assert guest_after[6] == sorted([*guest_before[6], "after-merge"])
    assert guest_after[7] == guest_before[7]
    assert Profile.objects.get(pk=guest.pk).event_count == 3


def test_only_the_latest_merge_touching_a_profile_can_be_undone(
    send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(identify("d1", "finn", 0))
    send(track("d2", "Guest 1", 1), identify("d2", "finn", 2))
    send(track("d3", "Guest 2", 3), identify("d3", "finn", 4))
    first, second = ProfileMerge.objects.order_by("pk")
    with pytest.raises(IdentityError) as refused:
        merge_undo(merge_id=first.pk)
    assert refused.value.code == "undo_refused"
    assert "merged again since" in refused.value.message
    merge_undo(merge_id=second.pk)
    merge_undo(merge_id=first.pk)
    finn = Profile.objects.get(user_id="finn")
    assert names(finn) == set()
    assert {names(Profile.objects.get(pk=m.source_id)).pop() for m in (first, second)} == {
        "Guest 1",
        "Guest 2",
    }


def test_undo_of_a_forced_merge_removes_the_alias(
    send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(identify("d1", "gus", 0), identify("d2", "gus-2", 0))
    with django_capture_on_commit_callbacks(execute=True):
        merge = merge_request(
            source=Profile.objects.get(user_id="gus-2"),
            target=Profile.objects.get(user_id="gus"),
            force=True,
        )
    merge_undo(merge_id=merge.pk)
    assert not ProfileAlias.objects.filter(alias="gus-2").exists()
    restored = Profile.objects.get(user_id="gus-2")
    assert restored.merged_into is None and restored.kind == "identified"
    assert profile_of("d2") == restored


def test_sweeper_requeues_a_merge_left_pending(api_app: ApiApp, send: Send) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from profiles.identity import merges_sweep

    send(identify("d1", "hana", 0))
    send(track("d2", "Guest", 1))
    guest = profile_of("d2")
    # A merge recorded while the broker was down: committed, never queued.
    merge = ProfileMerge.objects.create(
        app=api_app.app, source=guest, target=Profile.objects.get(user_id="hana"), reason="identify"
    )
    Profile.objects.filter(pk=guest.pk).update(merged_into=merge.target)
    ProfileMerge.objects.filter(pk=merge.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    assert merges_sweep() == 1  # eager in this test: the re-queued task runs at once
    merge.refresh_from_db()
    assert merge.status == "done"
    assert names(Profile.objects.get(user_id="hana")) == {"Guest"}
    assert merges_sweep() == 0


def test_a_merge_folds_the_guests_daily_activity_into_the_target(send: Send) -> None:
    from collections import Counter
    from datetime import UTC

    from sessions_timeline.models import ProfileDailyActivity

    def daily(profile: Profile) -> dict:
        rows = ProfileDailyActivity.objects.filter(profile=profile).values_list("day", "events")
        return dict(rows)

    send(identify("phone", "fay", 0), track("phone", "Phone 1", 1), track("phone", "Phone 2", 1500))
    # The guest shares one of the target's days and has days of its own.
    send(
        track("tablet", "Tab 1", 2), track("tablet", "Tab 2", 1501), track("tablet", "Tab 3", 2900)
    )
    guest = profile_of("tablet")
    assert sum(daily(guest).values()) == 3
    send(identify("tablet", "fay", 2950))  # a login: the guest merges into fay on commit
    fay = Profile.objects.get(user_id="fay")
    assert Profile.objects.get(pk=guest.pk).merged_into_id == fay.pk
    expected = Counter(
        moment.astimezone(UTC).date()
        for moment in Event.objects.filter(profile=fay).values_list("timestamp", flat=True)
    )
    assert daily(fay) == dict(expected) and sum(expected.values()) == fay.event_count == 7
    assert daily(guest) == {}
