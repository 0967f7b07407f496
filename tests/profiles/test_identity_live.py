"""Identity under real concurrency and real failures: gunicorn with several worker processes,
a real Celery worker and beat on a throwaway Redis, and the suite's PostgreSQL. Requests are
released together by a barrier. Nothing here uses the test client or eager tasks."""

from __future__ import annotations

import base64
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import pytest
from django.db import connection
from django.utils import timezone

from events.models import Event
from profiles.identity import IdentityError, merge_request
from profiles.models import Device, Profile, ProfileMerge
from profiles.services import AppKeys, app_create
from tests.processes import (
    celery_process,
    database_url_for_children,
    running_server,
    server_env,
    throwaway_redis,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

T0 = timezone.now().replace(microsecond=0) - timedelta(hours=6)


@dataclass
class Stack:
    base: str
    keys: AppKeys
    app_id: int
    env: dict[str, str]

    def post(self, path: str, body: Any, *, timeout: float = 30) -> tuple[int, dict]:
        token = base64.b64encode(f"{self.keys.write_key}:".encode()).decode()
        request = urllib.request.Request(
            self.base + path,
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read() or b"{}")

    def batch(self, *messages: dict) -> dict:
        status, body = self.post("/v1/batch", {"batch": list(messages)})
        assert status == 200, body
        assert body["rejected"] == 0, body
        return body


def track(device: str, name: str, minutes: float, mid: str) -> dict:
    return {
        "type": "track",
        "anonymousId": device,
        "event": name,
        "messageId": mid,
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
    }


def identify(device: str, user: str, minutes: float) -> dict:
    return {
        "type": "identify",
        "anonymousId": device,
        "userId": user,
        "messageId": f"identify-{device}-{user}",
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
    }


def wait_until(check: Callable[[], bool], *, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def all_merges_done() -> bool:
    return not ProfileMerge.objects.exclude(status="done").exists()


def released_together(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` in ``count`` threads released at once by a barrier."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung (deadlock?)"
    return results


@pytest.fixture
def stack_factory() -> Iterator[Callable[..., Any]]:
    """Start web (gunicorn, 4 workers), Celery worker and beat on a throwaway Redis."""
    import contextlib

    with contextlib.ExitStack() as stack:

        def start(*, worker: bool = True, **overrides: str) -> Stack:
            redis_instance = stack.enter_context(throwaway_redis())
            env = server_env(
                DATABASE_URL=database_url_for_children(),
                REDIS_URL=redis_instance.url,
                SWEEP_INTERVAL_SECONDS="1",
                MERGE_PENDING_GRACE_SECONDS="1",
                **overrides,
            )
            base = stack.enter_context(running_server(env, workers=4))
            if worker:
                stack.enter_context(celery_process(env))
                stack.enter_context(celery_process(env, beat=True))
            app, keys = app_create(name="Live app")
            result = Stack(base=base, keys=keys, app_id=app.pk, env=env)
            result.redis = redis_instance  # type: ignore[attr-defined]
            return result

        yield start


def test_twenty_concurrent_identifies_of_one_new_user_give_one_profile(stack_factory: Any) -> None:
    stack = stack_factory()
    devices = [f"guest-device-{i}" for i in range(20)]
    stack.batch(
        *(track(device, f"Browse {n}", n, f"{device}-{n}") for device in devices for n in range(3))
    )
    results = released_together(
        20, lambda i: stack.post("/v1/identify", identify(devices[i], "new-user", 10))
    )
    assert [status for status, _ in results] == [200] * 20, results
    wait_until(all_merges_done, what="merges")
    profiles = Profile.objects.filter(app_id=stack.app_id, user_id="new-user")
    assert profiles.count() == 1
    person = profiles.get()
    assert set(Device.objects.filter(profile=person).values_list("device_id", flat=True)) == set(
        devices
    )
    assert Event.objects.filter(app_id=stack.app_id).exclude(profile=person).count() == 0
    assert Event.objects.filter(profile=person).count() == 20 * 3 + 20
    assert Profile.objects.filter(app_id=stack.app_id, merged_into=person).count() == 19
    person.refresh_from_db()
    assert person.event_count == 80


def test_the_same_new_batch_sent_four_times_at_once_counts_each_event_once(
    stack_factory: Any,
) -> None:
    """A client's retries racing each other. They queue on the device's row lock; the first
    stores the events, each later one finds them stored when it inserts, rolls its optimistic
    pass back and runs again looking them up: sessions, profile counters and daily activity
    count each event once."""
    from sessions_timeline.models import ProfileDailyActivity, Session

    stack = stack_factory()
    stack.batch(identify("racer-phone", "racer", 0))
    messages = [track("racer-phone", f"Tap {n}", 1 + n / 10, f"race-{n}") for n in range(30)]
    results = released_together(4, lambda i: stack.post("/v1/batch", {"batch": messages}))
    assert [status for status, _ in results] == [200] * 4, results
    assert sorted(body["accepted"] for _, body in results) == [0, 0, 0, 30], results
    person = Profile.objects.get(app_id=stack.app_id, user_id="racer")
    stored = Event.objects.filter(profile=person)
    assert stored.count() == 31
    assert person.event_count == 31
    sessions = Session.objects.filter(profile=person)
    assert sum(session.event_count for session in sessions) == stored.exclude(session=None).count()
    for session in sessions:
        assert session.event_count == stored.filter(session=session).count()
    assert (
        sum(ProfileDailyActivity.objects.filter(profile=person).values_list("events", flat=True))
        == 31
    )


def test_events_arriving_during_a_merge_end_up_on_the_target(stack_factory: Any) -> None:
    stack = stack_factory(MERGE_BATCH_SIZE="20", MERGE_BATCH_PAUSE_SECONDS="0.3")
    stack.batch(identify("user-phone", "dana", 0))
    stack.batch(*(track("guest-tablet", "Old", n / 10, f"old-{n}") for n in range(200)))
    guest = Device.objects.get(app_id=stack.app_id, device_id="guest-tablet").profile
    # The guest also used a laptop (a second device still bound to the guest).
    Device.objects.create(
        app_id=stack.app_id,
        device_id="guest-laptop",
        profile=guest,
        binding_changed_at=T0,
        first_seen_at=T0,
        last_seen_at=T0,
    )
    stack.batch(identify("guest-tablet", "dana", 30))
    wait_until(
        lambda: ProfileMerge.objects.filter(status="running").exists(), what="the merge to start"
    )
    for wave in range(6):
        stack.batch(
            *(track("guest-laptop", "During", 40 + wave, f"during-{wave}-{n}") for n in range(10)),
            *(
                track("guest-tablet", "Late offline", 5 + wave / 10, f"late-{wave}-{n}")
                for n in range(5)
            ),
        )
    wait_until(all_merges_done, what="the merge")
    dana = Profile.objects.get(app_id=stack.app_id, user_id="dana")
    assert Event.objects.filter(profile=guest).count() == 0
    assert Event.objects.filter(profile=dana).count() == 1 + 200 + 1 + 60 + 30
    dana.refresh_from_db()
    assert dana.event_count == Event.objects.filter(profile=dana).count()
    assert Device.objects.get(app_id=stack.app_id, device_id="guest-laptop").profile == dana


def test_two_merges_into_one_target_at_once(stack_factory: Any) -> None:
    stack = stack_factory()
    stack.batch(identify("phone", "eve", 0))
    stack.batch(
        *(track(f"guest-{i}", "Browse", n, f"g{i}-{n}") for i in range(2) for n in range(50))
    )
    results = released_together(
        2, lambda i: stack.post("/v1/identify", identify(f"guest-{i}", "eve", 60))
    )
    assert [status for status, _ in results] == [200, 200]
    wait_until(all_merges_done, what="merges")
    eve = Profile.objects.get(app_id=stack.app_id, user_id="eve")
    assert ProfileMerge.objects.filter(target=eve, status="done").count() == 2
    assert Event.objects.filter(profile=eve).count() == 1 + 100 + 2
    assert Event.objects.filter(app_id=stack.app_id).exclude(profile=eve).count() == 0


def test_a_into_b_and_b_into_a_at_once_neither_deadlock_nor_lose_data(stack_factory: Any) -> None:
    stack = stack_factory()
    stack.batch(
        *(track(device, "Browse", n, f"{device}-{n}") for device in ("a", "b") for n in range(30))
    )
    a = Device.objects.get(app_id=stack.app_id, device_id="a").profile
    b = Device.objects.get(app_id=stack.app_id, device_id="b").profile
    pairs = [(a, b), (b, a)]

    def request(index: int) -> Any:
        source, target = pairs[index]
        return merge_request(source=source, target=target)

    results = released_together(2, request)
    merges = [result for result in results if isinstance(result, ProfileMerge)]
    refused = [result for result in results if isinstance(result, IdentityError)]
    assert len(merges) == 1 and len(refused) == 1, results
    assert refused[0].code == "already_merged"
    wait_until(all_merges_done, what="the merge")
    survivor = Profile.objects.get(pk=merges[0].target_id)
    assert survivor.merged_into is None
    assert Event.objects.filter(profile=survivor).count() == 60
    assert Profile.objects.get(pk=merges[0].source_id).merged_into == survivor


def test_merge_requested_while_the_broker_is_down_completes_later(stack_factory: Any) -> None:
    stack = stack_factory(worker=False)
    stack.batch(identify("phone", "finn", 0))
    stack.batch(*(track("tablet", "Browse", n, f"t-{n}") for n in range(40)))
    stack.redis.stop()
    started = time.monotonic()
    status, body = stack.post("/v1/identify", identify("tablet", "finn", 60))
    assert status == 200, body
    assert time.monotonic() - started < 15
    merge = ProfileMerge.objects.get(app_id=stack.app_id)
    assert merge.status == "pending"  # committed, not queued
    finn = Profile.objects.get(app_id=stack.app_id, user_id="finn")
    assert Profile.objects.get(pk=merge.source_id).merged_into == finn  # lookups already resolve
    stack.redis.start()  # same port: the broker is back
    with celery_process(stack.env), celery_process(stack.env, beat=True):
        wait_until(all_merges_done, timeout=90, what="the sweeper to re-queue the merge")
    assert Event.objects.filter(profile=finn).count() == 1 + 40 + 1


def test_worker_killed_between_batches_then_restarted(stack_factory: Any) -> None:
    stack = stack_factory(
        worker=False,
        MERGE_BATCH_SIZE="10",
        MERGE_BATCH_PAUSE_SECONDS="0.5",
        MERGE_STUCK_AFTER_SECONDS="2",
    )
    stack.batch(identify("phone", "gale", 0))
    stack.batch(*(track("tablet", "Browse", n / 10, f"t-{n}") for n in range(100)))
    guest = Device.objects.get(app_id=stack.app_id, device_id="tablet").profile
    with celery_process(stack.env) as worker:
        stack.batch(identify("tablet", "gale", 60))
        wait_until(
            lambda: 10 <= Event.objects.filter(original_profile=guest).count() <= 60,
            what="a few batches to move",
        )
        worker.kill()  # SIGKILL between two batches
    merge = ProfileMerge.objects.get(app_id=stack.app_id)
    assert merge.status == "running"
    moved_before = Event.objects.filter(original_profile=guest).count()
    assert 10 <= moved_before < 100
    with celery_process(stack.env), celery_process(stack.env, beat=True):
        wait_until(all_merges_done, timeout=90, what="the sweeper to resume the merge")
    merge.refresh_from_db()
    assert merge.attempts >= 2
    gale = Profile.objects.get(app_id=stack.app_id, user_id="gale")
    events = Event.objects.filter(app_id=stack.app_id)
    assert events.count() == 1 + 100 + 1  # nothing lost, nothing duplicated
    assert events.exclude(profile=gale).count() == 0
    assert merge.counts["events"] == 100
    gale.refresh_from_db()
    assert gale.event_count == 102
