"""DESIGN.md section 4, rule by rule, through the HTTP API; each test reads profiles, devices
and events back from PostgreSQL. Merge tasks run on commit (in-process in these tests; the
durability and concurrency tests run a real worker)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from events.models import Event
from profiles.models import Device, DeviceBinding, Profile, ProfileAlias, ProfileMerge
from tests.conftest import ApiApp
from tests.messages import T0, Send, at, identify, names, profile_of, track

pytestmark = pytest.mark.django_db


def test_rule1_unknown_device_creates_device_and_guest(send: Send) -> None:
    send(track("d1", "Opened", 0))
    profile = profile_of("d1")
    assert profile.kind == "guest" and profile.user_id is None
    assert (
        DeviceBinding.objects.filter(
            device__device_id="d1", profile=profile, reason="first_seen"
        ).count()
        == 1
    )


def test_rule2_first_identify_converts_guest_in_place(send: Send) -> None:
    send(track("d1", "Browse", 0))
    guest = profile_of("d1")
    send(identify("d1", "alice", 1), track("d1", "Buy", 2))
    profile = Profile.objects.get(pk=guest.pk)
    assert (profile.kind, profile.user_id) == ("identified", "alice")
    assert names(profile) == {"Browse", "Buy"}
    assert not ProfileMerge.objects.exists()
    assert Profile.objects.count() == 1


def test_rule3_guest_login_to_existing_user_rebinds_and_merges(send: Send) -> None:
    send(identify("phone", "alice", 0, {"email": "a@x.io"}), track("phone", "Phone event", 1))
    alice = profile_of("phone")
    send(
        track("tablet", "Tablet browse", 2),
        identify("tablet", "alice", 3),
        track("tablet", "Tablet buy", 4),
    )
    guest = Profile.objects.get(merges_out__target=alice)
    assert Device.objects.get(device_id="tablet").profile == alice
    merge = ProfileMerge.objects.get(source=guest)
    assert merge.status == "done" and merge.reason == "identify"
    assert merge.counts["events"] == 1
    guest.refresh_from_db()
    assert guest.merged_into == alice and guest.event_count == 0
    assert names(alice) == {"Phone event", "Tablet browse", "Tablet buy"}
    alice.refresh_from_db()
    assert alice.event_count == Event.objects.filter(profile=alice).count() == 5
    moved = Event.objects.get(name="Tablet browse")
    assert moved.original_profile == guest  # remembers where it was first recorded


def test_rule4_second_person_on_shared_phone_is_not_merged(send: Send) -> None:
    send(identify("shared", "alice", 0), track("shared", "Alice event", 1))
    alice = profile_of("shared")
    send(identify("shared", "bob", 2), track("shared", "Bob event", 3))
    bob = Profile.objects.get(user_id="bob")
    assert profile_of("shared") == bob
    assert names(alice) == {"Alice event"} and names(bob) == {"Bob event"}
    assert not ProfileMerge.objects.exists()
    assert Profile.objects.get(pk=alice.pk).merged_into is None
    assert DeviceBinding.objects.filter(
        device__device_id="shared", reason="login", profile=bob
    ).exists()


def test_rule4_to_an_existing_user_rebinds_without_merge(send: Send) -> None:
    send(identify("p1", "alice", 0), identify("p2", "bob", 0))
    send(identify("p1", "bob", 5), track("p1", "As bob", 6))
    assert profile_of("p1").user_id == "bob"
    assert not ProfileMerge.objects.exists()
    assert Profile.objects.filter(user_id="alice", merged_into__isnull=True).exists()


def test_rule5_native_logout_gives_fresh_guest(api_app: ApiApp, send: Send) -> None:
    send(identify("d1", "alice", 0), track("d1", "Before", 1))
    response = api_app.post("/api/v1/devices/d1/logout", {})
    assert response.status_code == 200
    assert response.json()["kind"] == "guest"
    fresh = profile_of("d1")
    assert fresh.kind == "guest" and fresh.user_id is None
    send({"type": "track", "anonymousId": "d1", "event": "After", "messageId": "after"})
    assert names(Profile.objects.get(user_id="alice")) == {"Before"}
    assert names(fresh) == {"After"}


def test_rule5_sdk_reset_new_anonymous_id_is_a_fresh_guest(send: Send) -> None:
    send(identify("anon-1", "alice", 0))
    send(track("anon-2", "After reset", 5))
    assert profile_of("anon-2").kind == "guest"
    assert profile_of("anon-2") != profile_of("anon-1")


def test_rule6_alias_between_two_identified_profiles_is_refused(
    api_app: ApiApp, send: Send
) -> None:
    send(identify("d1", "alice", 0), identify("d2", "bob", 0))
    response = api_app.segment("alias", {"previousId": "alice", "userId": "bob"})
    assert response.status_code == 400
    assert response.json()["code"] == "alias_refused"
    assert not ProfileMerge.objects.exists()
    assert Profile.objects.filter(merged_into__isnull=False).count() == 0


def test_rule7_server_event_by_user_id_creates_identified_profile(send: Send) -> None:
    send(track(None, "Invoice Paid", 0, user="carol"))
    carol = Profile.objects.get(user_id="carol")
    assert carol.kind == "identified"
    assert Event.objects.get(profile=carol).device is None


def test_rule7_alias_of_a_guest_device_converts_it(api_app: ApiApp, send: Send) -> None:
    send(track("anon-7", "Browse", 0))
    guest = profile_of("anon-7")
    assert api_app.segment("alias", {"previousId": "anon-7", "userId": "dave"}).status_code == 200
    guest.refresh_from_db()
    assert guest.user_id == "dave" and guest.kind == "identified"


def test_rule7_alias_of_guest_to_existing_user_merges(
    api_app: ApiApp, send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(identify("d1", "erin", 0))
    send(track("anon-8", "Guest browse", 1))
    guest = profile_of("anon-8")
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            api_app.segment("alias", {"previousId": "anon-8", "userId": "erin"}).status_code == 200
        )
    erin = Profile.objects.get(user_id="erin")
    assert Profile.objects.get(pk=guest.pk).merged_into == erin
    assert names(erin) == {"Guest browse"}
    assert profile_of("anon-8") == erin


def test_rule7_alias_namespace_routes_and_chains_resolve(api_app: ApiApp, send: Send) -> None:
    send(identify("d1", "frank", 0))
    # A never-seen previous id becomes another id of frank; then a chain onto that alias.
    assert (
        api_app.segment("alias", {"previousId": "frank-old-crm-id", "userId": "frank"}).status_code
        == 200
    )
    assert (
        api_app.segment(
            "alias", {"previousId": "frank-older-id", "userId": "frank-old-crm-id"}
        ).status_code
        == 200
    )
    frank = Profile.objects.get(user_id="frank")
    assert set(ProfileAlias.objects.filter(profile=frank).values_list("alias", flat=True)) == {
        "frank-old-crm-id",
        "frank-older-id",
    }
    send(track(None, "Via alias", 1, user="frank-older-id"))
    assert names(frank) == {"Via alias"}
    assert not Profile.objects.filter(user_id__in=["frank-old-crm-id", "frank-older-id"]).exists()


def test_rule8_data_for_a_merged_profile_reaches_the_target(send: Send) -> None:
    send(identify("phone", "gina", 0))
    send(track("tablet", "Guest", 1))
    guest = profile_of("tablet")
    send(identify("tablet", "gina", 2))
    gina = Profile.objects.get(user_id="gina")
    # Another device still bound to the tombstone (say it was bound before the merge moved it).
    Device.objects.create(
        app=gina.app,
        device_id="stale",
        profile=guest,
        binding_changed_at=T0,
        first_seen_at=T0,
        last_seen_at=T0,
    )
    send(track("stale", "Late device", 3))
    assert names(gina) == {"Guest", "Late device"}


def test_rule9_push_token_belongs_to_one_device(send: Send) -> None:
    context = {"device": {"token": "tok-1"}}
    send({**track("old-install", "Opened", 0), "context": context})
    send({**track("new-install", "Opened", 1), "context": context})
    assert Device.objects.get(device_id="new-install").push_token == "tok-1"
    assert Device.objects.get(device_id="old-install").push_token is None


def test_message_with_both_ids_links_without_identify(send: Send) -> None:
    send(track("d1", "Browse", 0))
    guest = profile_of("d1")
    send(track("d1", "Checkout", 1, user="hank"))
    assert Profile.objects.get(pk=guest.pk).user_id == "hank"


def test_device_only_late_message_goes_to_who_used_the_device_then(send: Send) -> None:
    send(identify("shared", "ivy", 0), identify("shared", "jack", 10))
    # An offline-queued event from minute 5 (before jack logged in) arrives now.
    send(track("shared", "Offline ivy", 5))
    assert names(Profile.objects.get(user_id="ivy")) == {"Offline ivy"}
    send(track("shared", "Now jack", 11))
    assert names(Profile.objects.get(user_id="jack")) == {"Now jack"}


def test_older_identify_does_not_rebind_the_device(send: Send) -> None:
    send(identify("d1", "kate", 10))
    send(identify("d1", "leo", 5), track("d1", "Later", 11))  # leo's identify is older
    assert profile_of("d1").user_id == "kate"
    assert Profile.objects.filter(user_id="leo").exists()  # recorded on the profile its ids name
    assert names(Profile.objects.get(user_id="kate")) == {"Later"}


def test_batch_applies_in_array_order(send: Send) -> None:
    send(identify("d1", "mia", 0))
    send(track("d1", "First", 1), identify("d1", "ned", 2), track("d1", "Third", 3))
    assert names(Profile.objects.get(user_id="mia")) == {"First"}
    assert names(Profile.objects.get(user_id="ned")) == {"Third"}


def test_late_message_inside_a_batch_after_a_rebind_uses_history(send: Send) -> None:
    send(identify("d1", "olga", 0))
    send(identify("d1", "paul", 10), track("d1", "Olga offline", 5))
    assert names(Profile.objects.get(user_id="olga")) == {"Olga offline"}


@pytest.mark.parametrize(
    "placeholder", ["null", "undefined", "None", "NIL", "0", "-1", "anonymous", "Guest", "  "]
)
def test_placeholder_user_ids_are_refused(api_app: ApiApp, placeholder: str) -> None:
    response = api_app.segment("identify", {"anonymousId": "d1", "userId": placeholder})
    assert response.status_code == 400
    assert response.json()["code"] in {"invalid_user_id", "missing_ids"}
    assert not Profile.objects.filter(kind="identified").exists()


def test_merge_attributes_target_wins_set_once_keeps_earliest(send: Send) -> None:
    send(identify("phone", "quinn", 10, {"plan": "pro", "createdAt": "2024-05-01T00:00:00Z"}))
    send(identify("tablet", "guest-temp", 0))  # placeholder-free way to give a guest traits:
    tablet = profile_of("tablet")
    Profile.objects.filter(pk=tablet.pk).update(
        user_id=None,
        kind="guest",
        attributes={"plan": "free", "color": "blue", "created_at": "2020-01-01T00:00:00Z"},
        attribute_times={"plan": at(0), "color": at(0), "created_at": at(0)},
        first_seen_at=T0 - timedelta(days=1),
    )
    send(identify("tablet", "quinn", 20))
    quinn = Profile.objects.get(user_id="quinn")
    assert quinn.attributes["plan"] == "pro"  # the target wins on conflict
    assert quinn.attributes["color"] == "blue"  # new keys come over
    assert quinn.attributes["created_at"] == "2020-01-01T00:00:00Z"  # set-once: the earliest
    assert quinn.first_seen_at == T0 - timedelta(days=1)
    merge = ProfileMerge.objects.get(target=quinn)
    assert merge.source_snapshot["attributes"]["plan"] == "free"
    assert merge.target_prior["attributes"]["created_at"]["value"] == "2024-05-01T00:00:00Z"
    assert merge.target_prior["attributes"]["color"]["present"] is False


def test_merge_run_twice_does_nothing_the_second_time(send: Send) -> None:
    from profiles.identity import merge_run

    send(identify("phone", "rita", 0))
    send(track("tablet", "Guest", 1), identify("tablet", "rita", 2))
    merge = ProfileMerge.objects.get()
    before = (
        merge.counts,
        Event.objects.filter(profile=merge.target).count(),
        Profile.objects.get(pk=merge.target_id).event_count,
    )
    merge_run(merge_id=merge.pk)
    merge.refresh_from_db()
    after = (
        merge.counts,
        Event.objects.filter(profile=merge.target).count(),
        Profile.objects.get(pk=merge.target_id).event_count,
    )
    assert before == after


def test_a_merge_in_many_small_batches_moves_every_event_once(send: Send, settings: Any) -> None:
    """Batches walk the source's events newest first from where the last one stopped, ties
    on the timestamp included; nothing is skipped, nothing moved twice."""
    settings.MERGE_BATCH_SIZE = 3
    send(identify("phone", "alice", 0))
    alice = profile_of("phone")
    # 14 guest events, several sharing a timestamp (the cursor breaks ties by id).
    send(*(track("tablet", f"E{n}", 1 + n // 3, mid=f"tablet-{n}") for n in range(14)))
    guest = profile_of("tablet")
    send(identify("tablet", "alice", 10))
    merge = ProfileMerge.objects.get(source=guest)
    assert merge.status == "done"
    assert merge.counts["events"] == merge.events_moved == 14
    assert Event.objects.filter(profile=guest).count() == 0
    moved = Event.objects.filter(profile=alice, original_profile=guest)
    assert sorted(moved.values_list("name", flat=True)) == sorted(f"E{n}" for n in range(14))
    alice.refresh_from_db()
    assert alice.event_count == Event.objects.filter(profile=alice).count() == 16


def test_events_reassign_batches_continue_after_the_cursor(send: Send) -> None:
    from events.services import events_reassign

    send(identify("phone", "alice", 0))
    alice = profile_of("phone")
    send(*(track("tablet", f"E{n}", 1 + n // 3, mid=f"tablet-{n}") for n in range(14)))
    guest = profile_of("tablet")
    counts, after = [], None
    while True:
        moved, after = events_reassign(source_id=guest.pk, target_id=alice.pk, limit=3, after=after)
        counts.append(moved)
        if moved < 3:
            break
    assert counts == [3, 3, 3, 3, 2]
    assert Event.objects.filter(profile=guest).count() == 0
