"""The load generator: Segment-shaped messages, closed-loop clients (N threads, each sending
its next request when the previous one answered) and an open-loop pacer (requests at fixed
times, latency counted from the time a request was due, so a slow server cannot hide its
queue). Standard library only: threads and http.client on 127.0.0.1."""

from __future__ import annotations

import base64
import http.client
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

TRACKS = [
    "Product Viewed",
    "Product Added",
    "Search Performed",
    "Promotion Clicked",
    "Article Read",
    "Video Played",
    "Checkout Started",
    "Order Completed",
]
SCREENS = ["Home", "Search", "Product", "Cart", "Profile", "Settings", "Feed"]
CONTEXTS = [
    {
        "app": {"name": "Shop", "version": "4.2.1", "build": "421"},
        "device": {"manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"},
        "library": {"name": "analytics-ios", "version": "4.1.8"},
        "locale": "fr-FR",
        "network": {"wifi": True, "carrier": "Orange"},
        "os": {"name": "iOS", "version": "17.4"},
        "screen": {"width": 390, "height": 844, "density": 3},
        "timezone": "Europe/Paris",
    },
    {
        "app": {"name": "Shop", "version": "4.2.0", "build": "420"},
        "device": {"manufacturer": "samsung", "model": "SM-S918B", "type": "android"},
        "library": {"name": "analytics-android", "version": "4.11.3"},
        "locale": "de-DE",
        "network": {"wifi": False, "carrier": "Vodafone"},
        "os": {"name": "Android", "version": "14"},
        "screen": {"width": 412, "height": 915, "density": 2.6},
        "timezone": "Europe/Berlin",
    },
]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Pools:
    """Ids that exist in the dataset, loaded once by the harness."""

    identified: list[tuple[str, str]]  # (anonymous id, user id) of identified live profiles
    guests: list[str]  # anonymous ids of live guest profiles
    user_ids: list[str]  # user ids of identified live profiles (login targets)
    whale: tuple[str, str] | None = None  # (anonymous id, user id)
    profile_ids: list[int] = field(default_factory=list)  # for the naive baseline
    device_ids: list[int] = field(default_factory=list)


class MessageMaker:
    """The mix of a /v1/batch: identify, track and screen on existing devices; ``new_share``
    of messages from never-seen devices; ``login_share`` logins (identify of a guest device
    with an existing user id: rule 3, a merge); ``whale_share`` on the whale's device."""

    def __init__(
        self,
        pools: Pools,
        *,
        seed: int,
        client: int,
        clients: int,
        new_share: float = 0.05,
        login_share: float = 0.01,
        whale_share: float = 0.001,
    ) -> None:
        self.pools = pools
        self.rng = random.Random(seed * 1000 + client)
        self.new_share, self.login_share, self.whale_share = new_share, login_share, whale_share
        # Each client logs in its own slice of the guests, each guest at most once. (Shuffling
        # a slice of 100,000 guests takes ~50 ms of the load generator's GIL: not for a maker
        # that makes no logins, such as /v1/track's, made as its timed phase starts.)
        self.login_guests = pools.guests[client::clients] if login_share > 0 else []
        self.rng.shuffle(self.login_guests)
        self.counts = {"new_device": 0, "login": 0, "whale": 0, "existing": 0}

    def _base(self, kind: str, now: datetime) -> dict[str, Any]:
        rng = self.rng
        return {
            "type": kind,
            "messageId": str(uuid.uuid4()),
            "timestamp": iso(now - timedelta(milliseconds=rng.randrange(0, 5000))),
            "context": CONTEXTS[rng.randrange(2)],
        }

    def _payload(self, message: dict[str, Any]) -> None:
        rng = self.rng
        kind = message["type"]
        if kind == "track":
            message["event"] = TRACKS[rng.randrange(len(TRACKS))]
            message["properties"] = {
                "product_id": f"sku-{rng.randrange(10**6)}",
                "category": "shoes",
                "price": round(rng.uniform(1, 500), 2),
                "currency": "EUR",
                "position": rng.randrange(1, 40),
                "list_id": f"list-{rng.randrange(1000)}",
                "experiment": {"id": f"exp-{rng.randrange(50)}", "variant": "B"},
                "tags": ["new", "sale", "top"],
            }
        elif kind == "screen":
            name = SCREENS[rng.randrange(len(SCREENS))]
            message["name"] = name
            message["properties"] = {
                "path": f"/{name.lower()}/{rng.randrange(10**6)}",
                "referrer": "push",
                "experiment": {"id": f"exp-{rng.randrange(50)}", "variant": "A"},
                "load_ms": rng.randrange(50, 2000),
            }
        else:
            message["traits"] = {
                "plan": ["free", "plus", "pro"][rng.randrange(3)],
                "orders": rng.randrange(100),
                "last_app_version": "4.2.1",
            }

    def message(self, now: datetime) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        if roll < self.login_share and self.login_guests:
            message = self._base("identify", now)
            message["anonymousId"] = self.login_guests.pop()
            message["userId"] = self.pools.user_ids[rng.randrange(len(self.pools.user_ids))]
            self.counts["login"] += 1
        elif roll < self.login_share + self.new_share:
            message = self._base("track" if rng.random() < 0.6 else "screen", now)
            message["anonymousId"] = str(uuid.uuid4())
            self.counts["new_device"] += 1
        else:
            kind_roll = rng.random()
            kind = "identify" if kind_roll < 0.10 else "track" if kind_roll < 0.60 else "screen"
            message = self._base(kind, now)
            whale = self.pools.whale
            if whale is not None and roll > 1.0 - self.whale_share:
                message["anonymousId"], message["userId"] = whale
                self.counts["whale"] += 1
            elif rng.random() < 0.6 or not self.pools.guests:
                message["anonymousId"], message["userId"] = self.pools.identified[
                    rng.randrange(len(self.pools.identified))
                ]
            else:
                if kind == "identify":
                    message["type"] = kind = "track"
                message["anonymousId"] = self.pools.guests[rng.randrange(len(self.pools.guests))]
            self.counts["existing"] += 1
        self._payload(message)
        return message

    def batch(self, size: int, *, per_device: int = 1) -> bytes:
        """``size`` messages of the mix. With ``per_device`` > 1 the batch is shaped like an
        SDK's: ``size / per_device`` devices drawn from the mix, each followed by more track
        and screen messages of the same device and user (one app session's worth)."""
        now = datetime.now(UTC)
        if per_device <= 1:
            messages = [self.message(now) for _ in range(size)]
        else:
            messages = []
            for _ in range(max(1, size // per_device)):
                lead = self.message(now)
                messages.append(lead)
                for _ in range(per_device - 1):
                    follow = self._base("track" if self.rng.random() < 0.55 else "screen", now)
                    follow["anonymousId"] = lead["anonymousId"]
                    if "userId" in lead:
                        follow["userId"] = lead["userId"]
                    self._payload(follow)
                    messages.append(follow)
        return orjson.dumps({"batch": messages, "sentAt": iso(now)})

    def track(self) -> bytes:
        now = datetime.now(UTC)
        message = self._base("track", now)
        message["anonymousId"], message["userId"] = self.pools.identified[
            self.rng.randrange(len(self.pools.identified))
        ]
        self._payload(message)
        message["sentAt"] = iso(now)
        return orjson.dumps(message)

    def naive_events(self, size: int, app_id: int) -> tuple[bytes, list[str]]:
        """The same events as plain rows for the naive DRF baseline."""
        now = datetime.now(UTC)
        rows, ids = [], []
        pools = self.pools
        for _ in range(size):
            message = self._base("track" if self.rng.random() < 0.55 else "screen", now)
            self._payload(message)
            k = self.rng.randrange(len(pools.profile_ids))
            rows.append(
                {
                    "app": app_id,
                    "profile": pools.profile_ids[k],
                    "device": pools.device_ids[k],
                    "session": None,
                    "type": message["type"],
                    "name": message.get("event") or message.get("name", ""),
                    "properties": message["properties"],
                    "context": message["context"],
                    "timestamp": message["timestamp"],
                    "received_at": iso(now),
                    "message_id": message["messageId"],
                    "source": "sdk",
                }
            )
            ids.append(message["messageId"])
        return orjson.dumps(rows), ids


class Http:
    """One keep-alive connection (re-opened when the server closes it, as gunicorn's sync
    workers do after each response)."""

    def __init__(self, port: int, *, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request("POST", path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.conn.close()
                    self.conn = None
                return response.status, data
            except (ConnectionError, http.client.HTTPException, OSError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def basic_auth(write_key: str) -> dict[str, str]:
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class Sample:
    started: float  # monotonic, when sent (or due, open loop)
    seconds: float
    status: int
    accepted: int = 0
    rejected: int = 0
    error: str = ""


@dataclass
class LoadResult:
    samples: list[Sample]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        ok = [s for s in self.samples if 200 <= s.status < 300]
        latencies = sorted(s.seconds for s in self.samples if s.status)
        accepted = sum(s.accepted for s in ok)
        statuses: dict[str, int] = {}
        for s in self.samples:
            key = str(s.status) if s.status else (s.error or "error")
            statuses[key] = statuses.get(key, 0) + 1
        return {
            "requests": len(self.samples),
            "seconds": round(self.seconds, 2),
            "requests_per_s": round(len(ok) / self.seconds, 1) if self.seconds else 0,
            "events": accepted,
            "events_per_s": round(accepted / self.seconds, 1) if self.seconds else 0,
            "p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "p90_ms": round(percentile(latencies, 90) * 1000, 2),
            "p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "max_ms": round((latencies[-1] if latencies else 0) * 1000, 2),
            "errors": len(self.samples) - len(ok),
            "rejected_items": sum(s.rejected for s in self.samples),
            "statuses": statuses,
            "worst_seconds": self.worst_seconds(),
            **self.extra,
        }

    def worst_seconds(self, top: int = 3) -> list[dict[str, Any]]:
        """The seconds of the run (by when requests were sent or due) with the slowest
        request: where a stall (a checkpoint, a vacuum, a cold start) sat."""
        if not self.samples:
            return []
        start = min(s.started for s in self.samples)
        by_second: dict[int, list[float]] = {}
        for s in self.samples:
            by_second.setdefault(int(s.started - start), []).append(s.seconds)
        worst = sorted(by_second.items(), key=lambda item: -max(item[1]))[:top]
        return [
            {"second": second, "requests": len(values), "max_ms": round(max(values) * 1000, 1)}
            for second, values in sorted(worst)
        ]


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = (len(sorted_values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def closed_loop(
    *,
    clients: int,
    seconds: float,
    request: Callable[[int, Http], tuple[int, int, int]],
    make_http: Callable[[], Http],
) -> LoadResult:
    """``clients`` threads, each sending ``request(client, http)`` back to back for
    ``seconds``; ``request`` returns (status, accepted, rejected)."""
    samples: list[Sample] = []
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + seconds

    def worker(client: int) -> None:
        http = make_http()
        mine: list[Sample] = []
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                status, accepted, rejected = request(client, http)
                mine.append(Sample(t0, time.monotonic() - t0, status, accepted, rejected))
            except Exception as error:  # a refused or reset connection counts as an error
                mine.append(Sample(t0, time.monotonic() - t0, 0, error=type(error).__name__))
                time.sleep(0.05)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(samples=samples, seconds=time.monotonic() - start)


def open_loop(
    *,
    rate: float,
    seconds: float,
    request: Callable[[Http], int],
    make_http: Callable[[], Http],
    threads: int = 32,
    grace: float = 10.0,
) -> LoadResult:
    """Requests due every 1/rate s for ``seconds``; each latency runs from its due time.
    A server that cannot keep up builds a backlog: requests still unsent ``grace`` seconds
    after the last one was due are not sent, and count as errors ("not sent (backlog)") with
    the time they had waited, a lower bound of their latency."""
    total = int(rate * seconds)
    start = time.monotonic() + 0.2
    due = [start + n / rate for n in range(total)]
    hard_stop = start + seconds + grace
    cursor = {"next": 0}
    lock = threading.Lock()
    samples: list[Sample] = []
    late = {"count": 0}

    def worker() -> None:
        http = make_http()
        mine: list[Sample] = []
        while True:
            with lock:
                n = cursor["next"]
                if n >= total:
                    break
                cursor["next"] = n + 1
            now = time.monotonic()
            if now > hard_stop:
                mine.append(Sample(due[n], now - due[n], 0, error="not sent (backlog)"))
                continue
            wait = due[n] - now
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.001:
                with lock:
                    late["count"] += 1
            try:
                status = request(http)
                mine.append(Sample(due[n], time.monotonic() - due[n], status))
            except Exception as error:
                mine.append(
                    Sample(due[n], time.monotonic() - due[n], 0, error=type(error).__name__)
                )
        with lock:
            samples.extend(mine)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = max(s.started + s.seconds for s in samples) - start if samples else seconds
    result = LoadResult(samples=samples, seconds=elapsed)
    result.extra = {"rate_target": rate, "sent_late": late["count"]}
    return result
