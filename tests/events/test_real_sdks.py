"""Real third-party SDKs, unchanged, against the Segment-compatible API on a live server.

Each SDK (Segment's and RudderStack's, for Python and for Node) is pointed at PushApp by its
host option alone and sends identify, track, screen and alias; the test then reads the rows
back from PostgreSQL. Every SDK gets one retry and a 5 s HTTP timeout, so a server that
refuses or hangs fails the test in seconds instead of being retried for hours.

The Node SDKs come from tests/sdk (``make sdk-deps`` installs them from its lock file) and
are driven by tests/sdk/send.mjs in a subprocess.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.db import connection
from django.utils import timezone
from requests.adapters import HTTPAdapter
from rudderstack.analytics import Client as RudderClient
from rudderstack.analytics import request as rudder_request
from segment.analytics import Client as SegmentClient
from segment.analytics import request as segment_request

from events.models import Event
from profiles.models import Device, Profile, ProfileAlias
from tests.conftest import ApiApp

pytestmark = [pytest.mark.sdk, pytest.mark.django_db(transaction=True)]

SDK_DIR = Path(__file__).resolve().parents[1] / "sdk"
HTTP_TIMEOUT = 5  # seconds, each SDK's per-request timeout
NODE_TIMEOUT = 60  # seconds for the whole Node run (it needs about one)
MESSAGE_TYPES = ("identify", "track", "screen", "alias")


@dataclass(frozen=True)
class Scenario:
    """What every SDK sends: one person's identify, track, screen and alias."""

    anonymous_id: str
    user_id: str
    new_user_id: str
    traits: dict[str, Any]
    event: str
    properties: dict[str, Any]
    screen: str
    screen_properties: dict[str, Any]
    message_ids: dict[str, str]

    @classmethod
    def for_sdk(cls, sdk: str) -> Scenario:
        tag = f"{sdk}-{uuid.uuid4().hex[:8]}"
        return cls(
            anonymous_id=f"anon-{tag}",
            user_id=f"user-{tag}",
            new_user_id=f"user-{tag}-renamed",
            traits={"email": f"{tag}@example.com", "firstName": "Ada", "plan": "pro", "logins": 3},
            event="Order Completed",
            properties={"order_id": f"o-{tag}", "total": 42.5, "currency": "EUR", "items": [1, 2]},
            screen="Checkout",
            screen_properties={"step": 2, "variant": "b"},
            message_ids={kind: f"{kind}-{tag}" for kind in MESSAGE_TYPES},
        )

    def as_json(self) -> str:
        return json.dumps(
            {
                "anonymousId": self.anonymous_id,
                "userId": self.user_id,
                "newUserId": self.new_user_id,
                "traits": self.traits,
                "event": self.event,
                "properties": self.properties,
                "screen": self.screen,
                "screenProperties": self.screen_properties,
                "messageIds": self.message_ids,
            }
        )


@dataclass
class Wire:
    """The HTTP exchanges an SDK made, observed through a hook (the SDK itself is unchanged)."""

    exchanges: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    responses: list[requests.Response] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        with self.lock:
            self.responses.append(response)
            self.exchanges.append(
                {
                    "url": response.request.url,
                    "status": response.status_code,
                    "encoding": response.request.headers.get("Content-Encoding"),
                    "body": body,
                }
            )

    def on_error(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            self.errors.append(f"{type(error).__name__}: {error} ({len(batch)} messages)")


@contextmanager
def observed(session: requests.Session) -> Iterator[Wire]:
    """Record every response the SDK's module-level requests session receives."""
    wire = Wire()
    session.hooks["response"].append(wire.on_response)
    try:
        yield wire
    finally:
        session.hooks["response"].remove(wire.on_response)
        # Close the keep-alive sockets, also one that an SDK error still holds through its
        # response: the live server's request thread keeps a database connection open until
        # its HTTP connection closes. (urllib3 2.8's clear() leaves closing pools to the GC.)
        for response in wire.responses:
            response.raw.close()
        for adapter in session.adapters.values():
            if isinstance(adapter, HTTPAdapter):
                pools = adapter.poolmanager.pools
                for key in pools.keys():  # noqa: SIM118 (the container refuses iteration)
                    pools[key].close()
        session.close()


@pytest.fixture(autouse=True)
def _server_db_connections_closed() -> Iterator[None]:
    """After each test, wait (bounded) for the live server's request threads to close their
    database connections, so none outlives the test database at the end of the run."""
    yield
    deadline = time.monotonic() + 5
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            row = cursor.fetchone()
            if row is None or row[0] == 0:
                return
            time.sleep(0.05)


def _drive_python_client(client: Any, scenario: Scenario) -> None:
    """The four calls through a Python SDK's public API, then flush and stop its thread."""
    ids = scenario.message_ids
    try:
        client.identify(
            user_id=scenario.user_id,
            anonymous_id=scenario.anonymous_id,
            traits=scenario.traits,
            message_id=ids["identify"],
        )
        client.track(
            user_id=scenario.user_id,
            anonymous_id=scenario.anonymous_id,
            event=scenario.event,
            properties=scenario.properties,
            message_id=ids["track"],
        )
        client.screen(
            user_id=scenario.user_id,
            anonymous_id=scenario.anonymous_id,
            name=scenario.screen,
            properties=scenario.screen_properties,
            message_id=ids["screen"],
        )
        client.alias(
            previous_id=scenario.user_id, user_id=scenario.new_user_id, message_id=ids["alias"]
        )
        client.flush()
    finally:
        client.join()


def _assert_python_wire(wire: Wire, *, gzip: bool) -> None:
    assert wire.errors == [], wire.errors
    assert wire.exchanges, "the SDK made no HTTP request"
    for exchange in wire.exchanges:
        assert exchange["status"] == 200, exchange
        assert urlsplit(exchange["url"]).path == "/v1/batch", exchange
        assert exchange["encoding"] == ("gzip" if gzip else None), exchange
        assert exchange["body"]["rejected"] == 0, exchange
    accepted = sum(exchange["body"]["accepted"] for exchange in wire.exchanges)
    assert accepted == len(MESSAGE_TYPES), wire.exchanges


def _run_node_sdk(sdk: str, host: str, write_key: str, scenario: Scenario) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the Node SDK tests need Node.js 20+")
    if not (SDK_DIR / "node_modules" / ".installed").exists():
        pytest.fail("tests/sdk/node_modules is missing: run `make sdk-deps`")
    result = subprocess.run(
        [node, str(SDK_DIR / "send.mjs"), sdk, host, write_key, scenario.as_json()],
        cwd=SDK_DIR,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )
    detail = f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.returncode == 0, detail
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == [], detail
    assert report["requests"], detail
    for exchange in report["requests"]:
        assert exchange["status"] == 200, detail
        assert urlsplit(exchange["url"]).path == "/v1/batch", detail
    return report


def _assert_stored(api_app: ApiApp, scenario: Scenario, *, library: str, since: datetime) -> None:
    """The rows every SDK must leave in PostgreSQL."""
    until = timezone.now()
    app = api_app.app
    ids = scenario.message_ids
    events = {kind: Event.objects.get(app=app, message_id=ids[kind]) for kind in MESSAGE_TYPES}
    assert Event.objects.filter(app=app).count() == len(MESSAGE_TYPES)

    assert {kind: event.type for kind, event in events.items()} == {
        kind: kind for kind in MESSAGE_TYPES
    }
    assert events["identify"].properties == scenario.traits
    assert (events["track"].name, events["track"].properties) == (
        scenario.event,
        scenario.properties,
    )
    assert (events["screen"].name, events["screen"].properties) == (
        scenario.screen,
        scenario.screen_properties,
    )
    assert events["alias"].properties == {"previousId": scenario.user_id}

    profile = Profile.objects.get(app=app, user_id=scenario.user_id)
    assert profile.kind == Profile.Kind.IDENTIFIED
    assert profile.merged_into_id is None
    assert profile.attributes["email"] == scenario.traits["email"]
    assert profile.attributes["first_name"] == "Ada"
    assert (profile.attributes["plan"], profile.attributes["logins"]) == ("pro", 3)
    assert Profile.objects.filter(app=app).count() == 1
    assert ProfileAlias.objects.filter(
        app=app, alias=scenario.new_user_id, profile=profile
    ).exists()

    device = Device.objects.get(app=app, device_id=scenario.anonymous_id)
    assert device.profile_id == profile.pk
    assert device.sdk_name == library

    for kind, event in events.items():
        assert event.profile_id == profile.pk, kind
        assert event.source == "sdk", kind
        assert event.device_id == (None if kind == "alias" else device.pk), kind
        # The SDK's own timestamps were read (and skew-corrected), not replaced.
        assert event.original_timestamp is None, kind
        assert since - timedelta(seconds=1) <= event.timestamp <= until + timedelta(seconds=1)


def test_segment_analytics_python(live_server: Any, api_app: ApiApp) -> None:
    scenario = Scenario.for_sdk("segment-py")
    since = timezone.now()
    with observed(segment_request._session) as wire:
        client = SegmentClient(
            api_app.keys.write_key,
            host=live_server.url,
            max_retries=1,
            timeout=HTTP_TIMEOUT,
            gzip=True,
            upload_interval=0.1,
            on_error=wire.on_error,
            max_total_backoff_duration=10,
            max_rate_limit_duration=10,
        )
        _drive_python_client(client, scenario)
    _assert_python_wire(wire, gzip=True)
    _assert_stored(api_app, scenario, library="analytics-python", since=since)


def test_rudder_sdk_python(live_server: Any, api_app: ApiApp) -> None:
    scenario = Scenario.for_sdk("rudder-py")
    since = timezone.now()
    with observed(rudder_request._session) as wire:
        client = RudderClient(
            api_app.keys.write_key,
            host=live_server.url,
            max_retries=1,
            timeout=HTTP_TIMEOUT,
            gzip=True,  # the SDK's default, stated
            upload_interval=0.1,
            on_error=wire.on_error,
        )
        _drive_python_client(client, scenario)
    _assert_python_wire(wire, gzip=True)
    _assert_stored(api_app, scenario, library="analytics-python", since=since)


def test_segment_analytics_node(live_server: Any, api_app: ApiApp) -> None:
    scenario = Scenario.for_sdk("segment-node")
    since = timezone.now()
    report = _run_node_sdk("segment", live_server.url, api_app.keys.write_key, scenario)
    assert all(exchange["encoding"] is None for exchange in report["requests"])
    _assert_stored(api_app, scenario, library="@segment/analytics-node", since=since)


def test_rudder_sdk_node(live_server: Any, api_app: ApiApp) -> None:
    scenario = Scenario.for_sdk("rudder-node")
    since = timezone.now()
    report = _run_node_sdk("rudder", live_server.url, api_app.keys.write_key, scenario)
    assert all(exchange["encoding"] == "gzip" for exchange in report["requests"])
    _assert_stored(api_app, scenario, library="analytics-node", since=since)
