"""The ingestion path runs a constant number of SQL statements per request, however many
messages it holds. Counted at the wire: libpq's protocol trace of the connection sees every
statement, including those sent through a raw psycopg cursor (the binary event insert)."""

from __future__ import annotations

import pytest

from events.models import Event
from profiles.models import Device, Profile, ProfileMerge
from tests.conftest import ApiApp
from tests.wire import wire_statements

pytestmark = pytest.mark.django_db


def _mixed_batch(size: int, tag: str, *, duplicates: bool = True) -> list[dict]:
    """Known and new devices, guest conversions, one merge-causing login, a backend event by
    user id, and (with ``duplicates``) already stored messages, in proportion to ``size``."""
    share = max(1, size // 5)
    batch: list[dict] = []
    for i in range(share):
        batch.append(
            {
                "type": "track",
                "anonymousId": f"known-{i % 5}",
                "event": "Viewed",
                "messageId": f"{tag}-k{i}",
            }
        )
    for i in range(share):
        batch.append(
            {
                "type": "screen",
                "anonymousId": f"{tag}-new-{i}",
                "name": "Home",
                "messageId": f"{tag}-n{i}",
            }
        )
    for i in range(share):
        batch.append(
            {
                "type": "identify",
                "anonymousId": f"{tag}-new-{i}",
                "userId": f"{tag}-user-{i}",
                "traits": {"plan": "pro"},
                "messageId": f"{tag}-i{i}",
            }
        )
    batch.append(
        {
            "type": "identify",
            "anonymousId": f"guest-{tag}",
            "userId": "existing-user",
            "messageId": f"{tag}-merge",
        }
    )
    batch.append(
        {
            "type": "track",
            "userId": "existing-user",
            "event": "Invoice Paid",
            "messageId": f"{tag}-server",
        }
    )
    while len(batch) < size:
        batch.append(
            {
                "type": "track",
                "anonymousId": "known-0",
                "event": "Viewed",
                "messageId": f"seed-{len(batch) % 5}" if duplicates else f"{tag}-f{len(batch)}",
            }
        )
    return batch[:size]


def _seed(api_app: ApiApp) -> None:
    seed = [
        {"type": "track", "anonymousId": f"known-{i}", "event": "Opened", "messageId": f"seed-{i}"}
        for i in range(5)
    ]
    seed.append(
        {
            "type": "identify",
            "anonymousId": "someone",
            "userId": "existing-user",
            "messageId": "seed-user",
        }
    )
    for tag in ("small", "large"):
        seed.append(
            {
                "type": "track",
                "anonymousId": f"guest-{tag}",
                "event": "Browse",
                "messageId": f"seed-guest-{tag}",
            }
        )
    assert api_app.segment("batch", {"batch": seed}).json()["accepted"] == len(seed)


def test_statements_per_batch_do_not_grow_with_the_batch(api_app: ApiApp) -> None:
    _seed(api_app)
    counts = {}
    for tag, size in (("small", 10), ("large", 500)):
        body = {"batch": _mixed_batch(size, tag, duplicates=False)}
        with wire_statements() as statements:
            response = api_app.segment("batch", body)
        assert response.status_code == 200
        payload = response.json()
        assert payload["rejected"] == 0, payload["errors"]
        assert payload["duplicates"] == 0
        counts[size] = statements
    # Each batch did real work: new devices, conversions, a merge.
    assert Device.objects.filter(device_id__startswith="large-new-").count() == 100
    assert Profile.objects.filter(user_id__startswith="large-user-").count() == 100
    assert ProfileMerge.objects.filter(target__user_id="existing-user").count() == 2
    assert Event.objects.filter(message_id__startswith="large-").count() == 500
    assert len(counts[10]) == len(counts[500]), (counts[10], counts[500])
    assert 8 <= len(counts[500]) <= 18, counts[500]
    assert not any('events_event"."message_id" AS' in s for s in counts[500]), counts[500]
    print("\n".join(counts[500]))


def test_a_batch_with_stored_messages_runs_twice_with_a_constant_count(api_app: ApiApp) -> None:
    """Messages stored before (a client's retry) are found by the insert's ON CONFLICT: the
    optimistic pass rolls back and a second pass looks them up first. Still constant."""
    _seed(api_app)
    counts = {}
    plain = {}
    for tag, size in (("small", 10), ("large", 500)):
        body = {"batch": _mixed_batch(size, tag, duplicates=True)}
        with wire_statements() as statements:
            response = api_app.segment("batch", body)
        payload = response.json()
        assert response.status_code == 200 and payload["rejected"] == 0, payload
        assert payload["duplicates"] >= 1
        counts[size] = statements
        with wire_statements() as statements:
            again = api_app.segment(
                "batch", {"batch": _mixed_batch(size, f"{tag}2", duplicates=False)}
            )
        assert again.status_code == 200
        plain[size] = statements
    assert len(counts[10]) == len(counts[500]), (counts[10], counts[500])
    assert len(counts[500]) <= 2 * len(plain[500]) + 2, (counts[500], plain[500])
    # The duplicates counted nothing: the events of the batch are stored once.
    assert Event.objects.filter(message_id__startswith="seed-").count() == 8
    assert Event.objects.filter(message_id__startswith="large-").count() == 302
