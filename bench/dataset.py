"""Build the benchmark dataset with COPY (never through the API), or reuse the one already there.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pushapp_bench \\
        python bench/dataset.py [--quick | --profiles N --events E --whale-events W] [--force]

What it builds (defaults; --quick: 20,000 profiles, 200,000 events, a 100,000-event whale):

- one App (standard profile fields, real write and server keys, kept in the marker table);
- 1,000,000 profiles: ~60% identified, ~38% guests, ~2% tombstones (guests merged into an
  identified profile: a done ProfileMerge, their device re-bound, the events and the session
  recorded on them moved to the target with ``original_profile`` set);
- their devices (a quarter of the identified profiles have two; ~60% with a push token) and
  the binding history (first seen, and identify for the devices of merged guests);
- 10,000,000 events spread with a power law (Pareto, alpha 1.16: a fifth of the profiles
  make ~80% of the events; guests are less active), grouped into sessions of 4 to 25 events
  on the profile's devices (Application Opened first, Application Backgrounded last in half of
  them, screens and tracks between), 5% of the identified profiles' events server-side
  (no device, no session), ~300-byte properties and a Segment-shaped context;
- plus one whale, "whale-user", with 1,000,000 events in ~25,000 sessions over 120 days on 6
  devices, and "typical-user" with 1,000 events over 90 days (what the timeline compares);
- ProfileDailyActivity rows and every counter (event_count, session_count, first/last seen of
  profiles and devices, session event and screen counts) consistent with the events.

Events get ids in time order (a session's events together), as ingestion would have written
them, so a profile's events are spread over the table as in production.

Speed: every table is loaded with COPY (text format) from two processes, with foreign-key
triggers off for the load (``session_replication_role = replica``; the rows are consistent by
construction and ``--verify`` checks it). The secondary indexes and unique constraints of the
bulk tables are dropped before the load and re-created after it from their own definitions
(``pg_get_indexdef``, so whatever the migrations define is what comes back; a unique
constraint as its index plus ``ADD CONSTRAINT .. USING INDEX``): sorting once is several times faster than maintaining a 10M-row random-key index
row by row. Then VACUUM ANALYZE (the shared server runs with autovacuum off).

Reuse: the ``bench_dataset`` table records the parameters of a complete build; a run asking for
the same parameters exits at once, unless earlier runs' ingestion grew the events table by more
than 15% (then it rebuilds).
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import os
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("PUSHAPP_ALLOW_DEV_SECRET", "1")

GENERATOR_VERSION = 3
QUICK = {"profiles": 20_000, "events": 200_000, "whale_events": 100_000}
FULL = {"profiles": 1_000_000, "events": 10_000_000, "whale_events": 1_000_000}
TYPICAL_EVENTS = 1_000
MAX_GROWTH = 0.15  # runs add events (ingestion); past this the dataset is rebuilt
DAY = 86_400.0
MIN_GAP = 32 * 60.0  # sessions of one device are more than the 30-minute timeout apart

TRACKS = [
    "Product Viewed",
    "Product Added",
    "Search Performed",
    "Promotion Clicked",
    "Article Read",
    "Video Played",
    "Notification Opened",
    "Checkout Started",
    "Order Completed",
    "Share Tapped",
]
SCREENS = ["Home", "Search", "Product", "Cart", "Profile", "Settings", "Feed", "Article", "Video"]
SERVER_EVENTS = ["Order Shipped", "Subscription Renewed", "Invoice Paid", "Support Ticket Closed"]
COUNTRIES = ["FR", "DE", "US", "GB", "ES", "IT", "BR", "JP", "IN", "NL"]
PLANS = ["free", "free", "free", "plus", "pro"]
FIRST_NAMES = ["Ada", "Alan", "Grace", "Linus", "Marie", "Nina", "Omar", "Sofia", "Tariq", "Yuki"]
DEVICES = [
    ("ios", "iOS", "17.4", "iPhone15,2", "Apple", "analytics-ios", "4.1.8"),
    ("ios", "iOS", "16.7", "iPhone13,3", "Apple", "analytics-ios", "4.1.8"),
    ("ios", "iPadOS", "17.2", "iPad13,1", "Apple", "analytics-ios", "4.1.6"),
    ("android", "Android", "14", "SM-S918B", "samsung", "analytics-android", "4.11.3"),
    ("android", "Android", "13", "Pixel 7", "Google", "analytics-android", "4.11.3"),
    ("android", "Android", "12", "M2101K6G", "Xiaomi", "analytics-android", "4.10.0"),
    ("web", "Mac OS", "14.3", "", "", "analytics.js", "5.2.0"),
    ("web", "Windows", "10", "", "", "analytics.js", "5.2.0"),
]
APP_VERSIONS = ["4.2.1", "4.2.0", "4.1.7", "4.0.3"]
LOCALES = ["en-US", "fr-FR", "de-DE", "es-ES", "pt-BR", "ja-JP"]
TIMEZONES = ["Europe/Paris", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Sao_Paulo"]


def _json(value: Any) -> str:
    import orjson

    text = orjson.dumps(value).decode()
    # Text-format COPY: these would need escaping; the generated vocabulary never has them.
    assert "\\" not in text and "\t" not in text and "\n" not in text, text
    return text


def _contexts() -> list[str]:
    contexts = []
    for n in range(64):
        platform, os_name, os_version, model, maker, library, lib_version = DEVICES[
            n % len(DEVICES)
        ]
        version = APP_VERSIONS[n % len(APP_VERSIONS)]
        contexts.append(
            _json(
                {
                    "app": {"name": "Shop", "version": version, "build": version.replace(".", "")},
                    "device": {"manufacturer": maker, "model": model, "type": platform},
                    "library": {"name": library, "version": lib_version},
                    "locale": LOCALES[n % len(LOCALES)],
                    "network": {"wifi": n % 3 != 0, "carrier": "Orange" if n % 2 else "Vodafone"},
                    "os": {"name": os_name, "version": os_version},
                    "screen": {"width": 390 + n, "height": 844, "density": 3},
                    "timezone": TIMEZONES[n % len(TIMEZONES)],
                }
            )
        )
    return contexts


def _properties(rng: random.Random) -> dict[str, list[str]]:
    """~50 variants per event name, ~150 to 400 bytes of JSON each."""
    pools: dict[str, list[str]] = {}
    for name in [
        *TRACKS,
        *SCREENS,
        *SERVER_EVENTS,
        "Application Opened",
        "Application Backgrounded",
    ]:
        variants = []
        for _ in range(50):
            sku = rng.randrange(10**6)
            props: dict[str, Any] = {
                "product_id": f"sku-{sku}",
                "category": rng.choice(["shoes", "books", "games", "music", "garden", "toys"]),
                "price": round(rng.uniform(1, 500), 2),
                "currency": "EUR",
                "position": rng.randrange(1, 40),
                "list_id": f"list-{rng.randrange(1000)}",
                "experiment": {"id": f"exp-{rng.randrange(50)}", "variant": rng.choice("ABC")},
                "tags": [rng.choice(["new", "sale", "top", "gift", "eco"]) for _ in range(3)],
            }
            if name in SCREENS:
                props = {
                    "name": name,
                    "path": f"/{name.lower()}/{sku}",
                    "referrer": rng.choice(["push", "deeplink", "organic", "email"]),
                    "experiment": props["experiment"],
                    "load_ms": rng.randrange(50, 2000),
                }
            elif name.startswith("Application"):
                props = {
                    "version": rng.choice(APP_VERSIONS),
                    "build": str(rng.randrange(400, 430)),
                    "from_background": rng.random() < 0.5,
                    "referring_application": rng.choice(["", "com.apple.mobilesafari", "push"]),
                }
            elif rng.random() < 0.5:
                props["coupon"] = f"WELCOME{rng.randrange(100)}"
                props["description"] = "lorem ipsum dolor sit amet " * rng.randrange(1, 4)
            variants.append(_json(props))
        pools[name] = variants
    return pools


def event_kinds(n: int, ended: bool, salt: int) -> list[tuple[str, str, int]]:
    """(type, name, property variant) of a session's events: shared by the events and the
    sessions writers, so a session's screen_count matches its events."""
    kinds = []
    for j in range(n):
        if j == 0:
            kinds.append(("track", "Application Opened", salt % 50))
        elif j == n - 1 and ended:
            kinds.append(("track", "Application Backgrounded", (j + salt) % 50))
        elif (j * 7 + salt) % 20 < 9:
            kinds.append(("screen", SCREENS[(j + salt) % len(SCREENS)], (j * 13 + salt) % 50))
        else:
            kinds.append(("track", TRACKS[(j * 3 + salt) % len(TRACKS)], (j * 11 + salt) % 50))
    return kinds


class TimeFormat:
    """Fast text timestamps for COPY (minute prefixes cached)."""

    def __init__(self) -> None:
        self.minutes: dict[int, str] = {}
        self.days: dict[int, str] = {}

    def ts(self, t: float) -> str:
        minute = int(t // 60)
        prefix = self.minutes.get(minute)
        if prefix is None:
            prefix = time.strftime("%Y-%m-%d %H:%M:", time.gmtime(minute * 60))
            self.minutes[minute] = prefix
        return f"{prefix}{t - minute * 60:06.3f}+00"

    def day(self, day: int) -> str:
        text = self.days.get(day)
        if text is None:
            text = time.strftime("%Y-%m-%d", time.gmtime(day * DAY))
            self.days[day] = text
        return text


# -- the plan (parent process, numbers only) ------------------------------------------------------


class Plan:
    """Who exists and what they did, as numbers; the writers turn it into rows."""

    def __init__(self, *, profiles: int, events: int, whale_events: int, seed: int) -> None:
        self.n_profiles, self.n_events, self.whale_events = profiles, events, whale_events
        self.rng = random.Random(seed)
        self.now = float(int(time.time()) - 120)
        # Profiles, by index (pk = index + 1).
        self.kind: list[int] = []  # 0 guest, 1 identified
        self.merged_into: list[int] = []  # pk or 0
        self.event_count: list[int] = []
        self.session_count: list[int] = []
        self.first_seen: list[float] = []
        self.last_seen: list[float] = []
        # Devices: [pk, owner pk, first owner pk (a tombstone) or 0, first seen, last seen,
        # re-bound at (0: never), has push token].
        self.devices: list[list[Any]] = []
        # Blocks (a session, or a run of standalone server events):
        # (start, profile pk, device pk or 0, events, step seconds, ended, original profile or 0)
        self.blocks: list[tuple[float, int, int, int, float, int, int]] = []
        self.daily = io.StringIO()
        self.daily_rows = 0
        self.merges: list[tuple[int, int, float]] = []  # (source, target, at)
        self.fmt = TimeFormat()

    def build(self) -> None:
        rng, n = self.rng, self.n_profiles
        self.kind = [0] * n
        self.merged_into = [0] * n
        self.event_count = [0] * n
        self.session_count = [0] * n
        self.first_seen = [0.0] * n
        self.last_seen = [0.0] * n
        # 0: the whale, 1: typical-user; then identified 60%, tombstones 2%, guests the rest.
        self.kind[0] = self.kind[1] = 1
        tombstones = []
        for i in range(2, n):
            r = rng.random()
            if r < 0.60:
                self.kind[i] = 1
            elif r < 0.62:
                tombstones.append(i)
        identified = [i for i in range(2, n) if self.kind[i] == 1]
        tomb_of: dict[int, list[int]] = {}
        for t in tombstones:
            target = rng.choice(identified)
            self.merged_into[t] = target + 1
            tomb_of.setdefault(target, []).append(t)
        # Power-law events over the live profiles other than the two special ones.
        live = [i for i in range(2, n) if self.merged_into[i] == 0]
        budget = self.n_events - TYPICAL_EVENTS
        weights = []
        for i in live:
            w = min(rng.paretovariate(1.16), 5_000.0)
            weights.append(w if self.kind[i] == 1 else w * 0.4)
        spare = budget - len(live)
        if spare < 0:
            raise SystemExit(f"{self.n_events} events cannot give {len(live)} profiles one each")
        total_w = sum(weights)
        counts = [1 + int(spare * w / total_w) for w in weights]
        short = budget - sum(counts)
        for k in rng.sample(range(len(live)), short) if short <= len(live) else []:
            counts[k] += 1
        for i, c in zip(live, counts, strict=True):
            self.event_count[i] = c
        self.event_count[0] = self.whale_events
        self.event_count[1] = TYPICAL_EVENTS
        # Per profile: devices, sessions, standalone runs, daily activity.
        for i in range(n):
            if self.merged_into[i]:
                continue
            self._profile(i, tomb_of.get(i, []))

    def _profile(self, i: int, tombs: list[int]) -> None:
        rng, pk = self.rng, i + 1
        n_events = self.event_count[i]
        whale, typical = i == 0, i == 1
        if whale:
            span_days, n_devices, mean_len, step = 120.0, 6, 40, 5.0
        elif typical:
            span_days, n_devices, mean_len, step = 90.0, 2, 20, 20.0
        else:
            span_days = rng.uniform(0.5, 365.0)
            n_devices = 2 if self.kind[i] == 1 and rng.random() < 0.25 else 1
            mean_len = rng.choice([4, 6, 8, 10, 12, 15, 20, 25])
            step = round(rng.uniform(5.0, 40.0), 3)
        end = self.now - rng.uniform(60.0, min(span_days, 30.0) * DAY * 0.5)
        start = end - span_days * DAY
        # Standalone (server-side) events: identified profiles only, ~5% (2% for the whale).
        standalone = 0
        if self.kind[i] == 1 and n_events >= 4:
            share = 0.02 if whale else 0.05
            standalone = int(n_events * share) + (1 if rng.random() < (n_events * share) % 1 else 0)
        in_sessions = n_events - standalone
        n_sessions = max(1, round(in_sessions / mean_len)) if in_sessions else 0
        # Devices: the profile's own, then one per merged guest (its first sessions).
        own = []
        for _ in range(n_devices):
            own.append(self._device(pk, 0))
        moved = [self._device(pk, t + 1) for t in tombs]
        device_sessions: dict[int, list[int]] = {}
        sizes = _split(in_sessions, n_sessions, rng)
        for k, size in enumerate(sizes):
            device = moved[k] if k < len(moved) else own[k % len(own)]
            device_sessions.setdefault(device[0], []).append(size)
        days: Counter[int] = Counter()
        first, last = math.inf, -math.inf
        by_pk = {d[0]: d for d in own + moved}
        for device_pk, session_sizes in device_sessions.items():
            device = by_pk[device_pk]
            durations = [(size - 1) * step for size in session_sizes]
            needed = sum(durations) + MIN_GAP * len(session_sizes)
            slack = max(0.0, (end - start) - needed)
            gaps = [rng.expovariate(1.0) for _ in session_sizes]
            gap_total = sum(gaps) or 1.0
            t = end - max(needed, end - start)
            original = device[2]
            for size, duration, gap in zip(session_sizes, durations, gaps, strict=True):
                t = round(t + MIN_GAP * 0.5 + slack * gap / gap_total, 3)
                ended = 1 if rng.random() < 0.5 else 0
                self.blocks.append((t, pk, device_pk, size, step, ended, original))
                self._count_days(days, t, size, step)
                device[3] = min(device[3], t)
                device[4] = max(device[4], t + duration)
                first, last = min(first, t), max(last, t + duration)
                t += duration + MIN_GAP * 0.5
                if original:
                    # The merged guest's device was re-bound to this profile a minute after its
                    # first session (identify), so later sessions on it are this profile's own.
                    device[5] = t - MIN_GAP * 0.5 + 60.0
                    original = 0
        left = standalone
        while left > 0:
            size = min(left, rng.randint(1, 3))
            at = round(rng.uniform(start, end), 3)
            self.blocks.append((at, pk, 0, size, 1.0, 0, 0))
            self._count_days(days, at, size, 1.0)
            first, last = min(first, at), max(last, at + size - 1)
            left -= size
        if first is math.inf:
            first = last = end
        for device in own + moved:
            if device[3] is math.inf:
                device[3] = device[4] = first
        for day, count in days.items():
            self.daily.write(f"{pk}\t{self.fmt.day(day)}\t{count}\n")
            self.daily_rows += 1
        self.session_count[i] = n_sessions
        self.first_seen[i], self.last_seen[i] = first, last

    def _device(self, owner_pk: int, original_pk: int) -> list[Any]:
        device = [
            len(self.devices) + 1,
            owner_pk,
            original_pk,
            math.inf,
            -math.inf,
            0.0,
            self.rng.random() < 0.6,
        ]
        self.devices.append(device)
        return device

    @staticmethod
    def _count_days(days: Counter[int], start: float, size: int, step: float) -> None:
        first_day, last_day = int(start // DAY), int((start + (size - 1) * step) // DAY)
        if first_day == last_day:
            days[first_day] += size
        else:
            for j in range(size):
                days[int((start + j * step) // DAY)] += 1

    def finish(self) -> None:
        """Tombstones' times and merges from their devices; blocks in time order with ids."""
        for device in self.devices:
            original = device[2]
            if original:
                t = original - 1
                rebound = device[5] or device[3]
                self.first_seen[t] = device[3]
                self.last_seen[t] = device[4] if device[5] else device[3]
                self.merges.append((original, device[1], rebound))
        self.blocks.sort()


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    if parts <= 0:
        return []
    base = [1] * parts
    spare = total - parts
    if spare > 0:
        weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
        scale = spare / sum(weights)
        extra = [int(w * scale) for w in weights]
        for k in range(spare - sum(extra)):
            extra[k % parts] += 1
        base = [b + e for b, e in zip(base, extra, strict=True)]
    return base


# -- writers (child processes: each opens its own connection) ---------------------------------

PLAN: Plan | None = None
STATE: dict[str, Any] = {}


def _connect() -> Any:
    import psycopg

    conn = psycopg.connect(STATE["conninfo"], autocommit=False)
    with conn.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")  # no FK triggers for the load
        cursor.execute("SET synchronous_commit = off")
    return conn


def _copy(table: str, columns: list[str], chunks: Any) -> int:
    conn = _connect()
    rows = 0
    with conn, conn.cursor() as cursor:
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with cursor.copy(sql) as copy:
            for text, count in chunks:
                copy.write(text)
                rows += count
    conn.close()
    return rows


def _buffered(lines: Any, size: int = 1 << 20) -> Any:
    parts: list[str] = []
    length = rows = 0
    for line in lines:
        parts.append(line)
        length += len(line)
        rows += 1
        if length >= size:
            yield "".join(parts), rows
            parts, length, rows = [], 0, 0
    if parts:
        yield "".join(parts), rows


def write_events(first_block: int, last_block: int) -> tuple[str, int]:
    plan = PLAN
    assert plan is not None
    app = STATE["app_id"]
    contexts = STATE["contexts"]
    props = STATE["properties"]
    server_context = STATE["server_context"]
    fmt = TimeFormat()
    ids = STATE["block_ids"]

    def lines() -> Any:
        for b in range(first_block, last_block):
            start, pk, device, n, step, ended, original = plan.blocks[b]
            event_id, session_id = ids[b]
            hexes = os.urandom(16 * n).hex()
            orig = str(original) if original else "\\N"
            if device:
                ctx = contexts[device % 64]
                kinds = event_kinds(n, bool(ended), b)
                dev, sess, source = str(device), str(session_id), "sdk"
            else:
                ctx = server_context
                kinds = [("track", SERVER_EVENTS[(b + j) % 4], (b + j) % 50) for j in range(n)]
                dev, sess, source = "\\N", "\\N", "server"
            prefix = f"{app}\t{pk}\t{orig}\t{dev}\t{sess}\t"
            for j in range(n):
                kind, name, variant = kinds[j]
                t = start + j * step
                h = hexes[32 * j : 32 * j + 32]
                yield (
                    f"{event_id + j}\t{prefix}{kind}\t{name}\t{props[name][variant]}\t{ctx}\t"
                    f"{fmt.ts(t)}\t\\N\t{fmt.ts(t + 0.8 + (j % 5) * 0.3)}\t"
                    f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}\t{source}\n"
                )

    rows = _copy(
        "events_event",
        [
            "id",
            "app_id",
            "profile_id",
            "original_profile_id",
            "device_id",
            "session_id",
            "type",
            "name",
            "properties",
            "context",
            "timestamp",
            "original_timestamp",
            "received_at",
            "message_id",
            "source",
        ],
        _buffered(lines()),
    )
    return f"events {first_block}-{last_block}", rows


def write_sessions() -> tuple[str, int]:
    plan = PLAN
    assert plan is not None
    app = STATE["app_id"]
    fmt = TimeFormat()
    ids = STATE["block_ids"]

    def lines() -> Any:
        for b, (start, pk, device, n, step, ended, original) in enumerate(plan.blocks):
            if not device:
                continue
            session_id = ids[b][1]
            screens = sum(1 for kind in event_kinds(n, bool(ended), b) if kind[0] == "screen")
            last = start + (n - 1) * step
            yield (
                f"{session_id}\t{app}\t{pk}\t{original or chr(92) + 'N'}\t{device}\t\\N\t"
                f"{fmt.ts(start)}\t{fmt.ts(last) if ended else chr(92) + 'N'}\t{fmt.ts(last)}\t"
                f"{n}\t{screens}\t{APP_VERSIONS[device % 4]}\t{fmt.ts(start + 1)}\n"
            )

    rows = _copy(
        "sessions_timeline_session",
        [
            "id",
            "app_id",
            "profile_id",
            "original_profile_id",
            "device_id",
            "sdk_session_id",
            "started_at",
            "ended_at",
            "last_event_at",
            "event_count",
            "screen_count",
            "app_version",
            "created_at",
        ],
        _buffered(lines()),
    )
    return "sessions", rows


def write_profiles() -> tuple[str, int]:
    plan = PLAN
    assert plan is not None
    app = STATE["app_id"]
    fmt = TimeFormat()
    rng = random.Random(7)
    special = {0: "whale-user", 1: "typical-user"}

    def lines() -> Any:
        for i in range(plan.n_profiles):
            pk = i + 1
            public_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            first, last = plan.first_seen[i], plan.last_seen[i]
            if plan.kind[i]:
                user_id = special.get(i, f"user-{pk}")
                at = fmt.ts(first).replace(" ", "T").replace("+00", "+00:00")
                attributes = _json(
                    {
                        "email": f"{user_id}@example.com",
                        "first_name": FIRST_NAMES[i % 10],
                        "country": COUNTRIES[i % 10],
                        "plan": PLANS[i % 5],
                        "created_at": at,
                        "orders": i % 17,
                    }
                )
                times = _json(
                    {
                        k: at
                        for k in ("email", "first_name", "country", "plan", "created_at", "orders")
                    }
                )
                kind = "identified"
            else:
                user_id, kind, attributes, times = "\\N", "guest", "{}", "{}"
            merged = str(plan.merged_into[i]) if plan.merged_into[i] else "\\N"
            yield (
                f"{pk}\t{app}\t{public_id}\t{user_id}\t{kind}\t{merged}\t{attributes}\t{times}\t"
                f"{fmt.ts(first)}\t{fmt.ts(last)}\t{plan.event_count[i]}\t"
                f"{plan.session_count[i]}\t{fmt.ts(first)}\t{fmt.ts(last)}\n"
            )

    rows = _copy(
        "profiles_profile",
        [
            "id",
            "app_id",
            "public_id",
            "user_id",
            "kind",
            "merged_into_id",
            "attributes",
            "attribute_times",
            "first_seen_at",
            "last_seen_at",
            "event_count",
            "session_count",
            "created_at",
            "updated_at",
        ],
        _buffered(lines()),
    )
    return "profiles", rows


def write_devices() -> tuple[str, int]:
    plan = PLAN
    assert plan is not None
    app = STATE["app_id"]
    fmt = TimeFormat()
    rng = random.Random(11)

    def lines() -> Any:
        for pk, owner, _original, first, last, rebound, token in plan.devices:
            platform, os_name, os_version, model, maker, library, lib_version = DEVICES[pk % 8]
            anonymous_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            push = f"tok{pk:x}{rng.getrandbits(192):048x}" if token else "\\N"
            opt_in = "t" if token else "\\N"
            bound = fmt.ts(rebound or first)
            attributes = _json({"hardware_id": f"hw-{pk:x}"})
            yield (
                f"{pk}\t{app}\t{anonymous_id}\t{owner}\t{bound}\t{platform}\t{os_name}\t"
                f"{os_version}\t{model}\t{maker}\t{APP_VERSIONS[pk % 4]}\t"
                f"{APP_VERSIONS[pk % 4].replace('.', '')}\t{library}\t{lib_version}\t"
                f"{LOCALES[pk % 6]}\t{TIMEZONES[pk % 5]}\t{push}\t{opt_in}\t{attributes}\t"
                f"{fmt.ts(first)}\t{fmt.ts(last)}\t{fmt.ts(first)}\t{fmt.ts(last)}\n"
            )

    rows = _copy(
        "profiles_device",
        [
            "id",
            "app_id",
            "device_id",
            "profile_id",
            "binding_changed_at",
            "platform",
            "os_name",
            "os_version",
            "model",
            "manufacturer",
            "app_version",
            "app_build",
            "sdk_name",
            "sdk_version",
            "locale",
            "timezone",
            "push_token",
            "push_opt_in",
            "attributes",
            "first_seen_at",
            "last_seen_at",
            "created_at",
            "updated_at",
        ],
        _buffered(lines()),
    )
    return "devices", rows


def write_small() -> tuple[str, int]:
    """Bindings, merges and daily activity."""
    plan = PLAN
    assert plan is not None
    app = STATE["app_id"]
    fmt = TimeFormat()

    def bindings() -> Any:
        n = 0
        for pk, owner, original, first, _last, rebound, _token in plan.devices:
            n += 1
            yield f"{n}\t{app}\t{pk}\t{original or owner}\t{fmt.ts(first)}\tfirst_seen\t{fmt.ts(first)}\n"
            if original:
                n += 1
                yield f"{n}\t{app}\t{pk}\t{owner}\t{fmt.ts(rebound)}\tidentify\t{fmt.ts(rebound)}\n"

    rows = _copy(
        "profiles_devicebinding",
        ["id", "app_id", "device_id", "profile_id", "bound_at", "reason", "created_at"],
        _buffered(bindings()),
    )

    def merges() -> Any:
        for n, (source, target, at) in enumerate(plan.merges, start=1):
            i = source - 1
            snapshot = _json(
                {
                    "user_id": None,
                    "kind": "guest",
                    "attributes": {},
                    "attribute_times": {},
                    "first_seen_at": fmt.ts(plan.first_seen[i]),
                    "last_seen_at": fmt.ts(plan.last_seen[i]),
                    "event_count": 0,
                    "session_count": 1,
                }
            )
            counts = _json(
                {"events": 0, "sessions": 1, "devices": [], "aliases": [], "tombstones": []}
            )
            yield (
                f"{n}\t{app}\t{source}\t{target}\tdone\tidentify\tf\t{snapshot}\t{{}}\t{counts}\t0\t1\t\t"
                f"{fmt.ts(at)}\t{fmt.ts(at + 1)}\t{fmt.ts(at + 2)}\t{fmt.ts(at + 2)}\n"
            )

    rows += _copy(
        "profiles_profilemerge",
        [
            "id",
            "app_id",
            "source_id",
            "target_id",
            "status",
            "reason",
            "forced",
            "source_snapshot",
            "target_prior",
            "counts",
            "events_moved",
            "attempts",
            "last_error",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ],
        _buffered(merges()),
    )

    def daily() -> Any:
        yield plan.daily.getvalue(), plan.daily_rows

    rows += _copy(
        "sessions_timeline_profiledailyactivity", ["profile_id", "day", "events"], daily()
    )
    return "bindings, merges, daily activity", rows


def run_sql(statements: list[str] | str) -> tuple[str, float]:
    import psycopg

    if isinstance(statements, str):
        statements = [statements]
    started = time.monotonic()
    with psycopg.connect(STATE["conninfo"], autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 0")
        for statement in statements:
            conn.execute(statement)
    return statements[0], time.monotonic() - started


def _task(task: tuple[str, tuple[Any, ...]]) -> tuple[str, Any, float]:
    name, args = task
    started = time.monotonic()
    result = globals()[name](*args)
    return name, result, time.monotonic() - started


# -- orchestration ---------------------------------------------------------------------------------

BULK_TABLES = [
    "events_event",
    "sessions_timeline_session",
    "sessions_timeline_profiledailyactivity",
    "profiles_devicebinding",
    "profiles_device",
    "profiles_profilemerge",
    "profiles_profile",
]


def secondary_ddl(cursor: Any, table: str) -> list[list[Any]]:
    """[table, name, drop, [create statements]] of the table's unique constraints and
    non-primary indexes. A unique constraint comes back as its index (built under a SHARE lock,
    alongside the table's other index builds) then ``ADD CONSTRAINT .. USING INDEX``."""
    out: list[list[Any]] = []
    cursor.execute(
        "SELECT conname, pg_get_indexdef(conindid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'u' ORDER BY conname",
        [table],
    )
    for name, definition in cursor.fetchall():
        out.append(
            [
                table,
                name,
                f'ALTER TABLE {table} DROP CONSTRAINT "{name}"',
                [
                    definition,
                    f'ALTER TABLE {table} ADD CONSTRAINT "{name}" UNIQUE USING INDEX "{name}"',
                ],
            ]
        )
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
        "AND NOT i.indisprimary AND NOT EXISTS (SELECT 1 FROM pg_constraint k "
        "WHERE k.conindid = i.indexrelid) ORDER BY c.relname",
        [table],
    )
    for name, definition in cursor.fetchall():
        out.append([table, name, f'DROP INDEX "{name}"', [definition]])
    return out


def conninfo_from_settings() -> str:
    from django.db import connection
    from psycopg.conninfo import make_conninfo

    params = connection.get_connection_params()
    keep = {k: v for k, v in params.items() if k in ("dbname", "user", "password", "host", "port")}
    return make_conninfo(**{k: str(v) for k, v in keep.items() if v not in (None, "")})


def marker_read(cursor: Any) -> dict[str, Any] | None:
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS bench_dataset (id int PRIMARY KEY, state text NOT NULL, "
        "params jsonb NOT NULL, info jsonb NOT NULL DEFAULT '{}', ddl jsonb NOT NULL DEFAULT '[]', "
        "updated_at timestamptz NOT NULL DEFAULT now())"
    )
    cursor.execute("SELECT state, params, info, ddl FROM bench_dataset WHERE id = 1")
    row = cursor.fetchone()
    if row is None:
        return None
    return {"state": row[0], "params": row[1], "info": row[2], "ddl": row[3]}


def marker_write(
    cursor: Any, state: str, params: dict[str, Any], info: dict[str, Any], ddl: Any
) -> None:
    from psycopg.types.json import Jsonb

    cursor.execute(
        "INSERT INTO bench_dataset (id, state, params, info, ddl, updated_at) "
        "VALUES (1, %s, %s, %s, %s, now()) ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, "
        "params = EXCLUDED.params, info = EXCLUDED.info, ddl = EXCLUDED.ddl, updated_at = now()",
        [state, Jsonb(params), Jsonb(info), Jsonb(ddl)],
    )


def log(message: str) -> None:
    print(f"[dataset {time.strftime('%H:%M:%S')}] {message}", flush=True)


def build(params: dict[str, Any], *, workers: int, verify: bool) -> dict[str, Any]:
    import psycopg
    from django.db import connection

    global PLAN
    started = time.monotonic()
    conninfo = conninfo_from_settings()
    STATE["conninfo"] = conninfo
    admin = psycopg.connect(conninfo, autocommit=True)
    cursor = admin.cursor()
    previous = marker_read(cursor)
    # Start from empty tables (restoring any index a crashed build left dropped).
    cursor.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND "
        "(tablename LIKE 'profiles\\_%%' OR tablename LIKE 'events\\_%%' OR "
        "tablename LIKE 'sessions\\_timeline\\_%%')"
    )
    tables = [row[0] for row in cursor.fetchall()]
    log(f"emptying {len(tables)} tables")
    cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    for _table, name, _drop, creates in (previous or {}).get("ddl") or []:
        cursor.execute("SELECT 1 FROM pg_class WHERE relname = %s", [name])
        index_exists = cursor.fetchone() is not None
        cursor.execute("SELECT 1 FROM pg_constraint WHERE conname = %s", [name])
        constraint_missing = len(creates) == 2 and cursor.fetchone() is None
        todo = creates[1:] if index_exists else creates
        if not index_exists or constraint_missing:
            log(f"  restoring {name}, left dropped by an interrupted build")
            for statement in todo:
                cursor.execute(statement)
    connection.close()
    from profiles.services import app_create

    app, keys = app_create(name="Bench App")
    connection.close()
    STATE["app_id"] = app.pk
    rng = random.Random(params["seed"])
    STATE["contexts"] = _contexts()
    STATE["properties"] = _properties(rng)
    STATE["server_context"] = _json({"library": {"name": "analytics-python", "version": "2.3.2"}})

    log(
        f"planning {params['profiles']:,} profiles, {params['events']:,} events + whale {params['whale_events']:,}"
    )
    plan = Plan(
        profiles=params["profiles"],
        events=params["events"],
        whale_events=params["whale_events"],
        seed=params["seed"],
    )
    plan.build()
    plan.finish()
    PLAN = plan
    # Event and session ids in time order.
    block_ids = []
    event_id, session_id = 1, 1
    for block in plan.blocks:
        block_ids.append((event_id, session_id if block[2] else 0))
        event_id += block[3]
        if block[2]:
            session_id += 1
    STATE["block_ids"] = block_ids
    total_events = event_id - 1
    planned = time.monotonic()
    log(
        f"planned in {planned - started:.0f}s: {len(plan.devices):,} devices, "
        f"{session_id - 1:,} sessions, {total_events:,} events, {plan.daily_rows:,} daily rows"
    )

    ddl: list[list[Any]] = []
    for table in BULK_TABLES:
        ddl.extend(secondary_ddl(cursor, table))
    marker_write(cursor, "loading", params, {}, ddl)
    for _table, _name, drop, _creates in ddl:
        cursor.execute(drop)
    log(f"dropped {len(ddl)} secondary indexes and unique constraints for the load")

    shards = max(2, min(16, total_events // 500_000))
    tasks: list[tuple[str, tuple[Any, ...]]] = []
    per_shard = total_events / shards
    edge, acc = 0, 0
    for b, block in enumerate(plan.blocks):
        acc += block[3]
        if acc >= per_shard and len(tasks) < shards - 1:
            tasks.append(("write_events", (edge, b + 1)))
            edge, acc = b + 1, 0
    tasks.append(("write_events", (edge, len(plan.blocks))))
    tasks = [
        ("write_profiles", ()),
        ("write_devices", ()),
        ("write_sessions", ()),
        ("write_small", ()),
        *tasks,
    ]
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        for _name, (what, rows), seconds in pool.imap_unordered(_task, tasks):
            log(f"  {what}: {rows:,} rows in {seconds:.1f}s ({rows / max(seconds, 1e-9):,.0f}/s)")
        loaded = time.monotonic()
        log(f"loaded in {loaded - planned:.0f}s; re-creating {len(ddl)} indexes and constraints")
        # Biggest tables first (BULK_TABLES is in size order).
        order = sorted(ddl, key=lambda item: (BULK_TABLES.index(item[0]), item[1]))
        for sql, seconds in pool.imap_unordered(run_sql, [creates for *_, creates in order]):
            log(f"  {seconds:6.1f}s  {sql[:110]}")
        indexed = time.monotonic()
        for table in [*BULK_TABLES, "profiles_app", "profiles_profilefield"]:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"GREATEST((SELECT max(id) FROM {table}), 1))"
            )
        log("VACUUM ANALYZE")
        for _sql, seconds in pool.imap_unordered(
            run_sql, [f"VACUUM (ANALYZE) {table}" for table in BULK_TABLES]
        ):
            log(f"  {seconds:6.1f}s  {_sql}")
    vacuumed = time.monotonic()
    info = {
        "app_id": app.pk,
        "write_key": keys.write_key,
        "server_key": keys.server_key,
        "whale_profile_id": 1,
        "whale_user_id": "whale-user",
        "typical_profile_id": 2,
        "typical_user_id": "typical-user",
        "profiles": plan.n_profiles,
        "devices": len(plan.devices),
        "sessions": session_id - 1,
        "events": total_events,
        "daily_rows": plan.daily_rows,
        "tombstones": len(plan.merges),
        "seconds": {
            "plan": round(planned - started, 1),
            "copy": round(loaded - planned, 1),
            "indexes": round(indexed - loaded, 1),
            "vacuum_analyze": round(vacuumed - indexed, 1),
            "total": round(vacuumed - started, 1),
        },
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    marker_write(cursor, "complete", params, info, [])
    admin.close()
    log(f"built in {vacuumed - started:.0f}s")
    if verify:
        verify_dataset(conninfo)
    return info


VERIFY_SQL = {
    "profiles whose event_count differs from their events": """
        SELECT count(*) FROM profiles_profile p LEFT JOIN (
            SELECT profile_id, count(*) n, min(timestamp) f, max(timestamp) l
            FROM events_event GROUP BY profile_id) e ON e.profile_id = p.id
        WHERE p.event_count <> coalesce(e.n, 0)
           OR (e.n > 0 AND (p.first_seen_at <> e.f OR p.last_seen_at <> e.l))""",
    "profiles whose session_count differs from their sessions": """
        SELECT count(*) FROM profiles_profile p LEFT JOIN (
            SELECT profile_id, count(*) n FROM sessions_timeline_session GROUP BY profile_id) s
            ON s.profile_id = p.id WHERE p.session_count <> coalesce(s.n, 0)""",
    "sessions whose counts or span differ from their events": """
        SELECT count(*) FROM sessions_timeline_session s JOIN (
            SELECT session_id, count(*) n, count(*) FILTER (WHERE type = 'screen') sc,
                   min(timestamp) f, max(timestamp) l
            FROM events_event WHERE session_id IS NOT NULL GROUP BY session_id) e
            ON e.session_id = s.id
        WHERE s.event_count <> e.n OR s.screen_count <> e.sc OR s.started_at <> e.f
           OR s.last_event_at <> e.l""",
    "daily activity rows that differ from the events": """
        SELECT count(*) FROM (
            SELECT profile_id, (timestamp AT TIME ZONE 'UTC')::date AS day, count(*) n
            FROM events_event GROUP BY 1, 2) e
        FULL JOIN sessions_timeline_profiledailyactivity d USING (profile_id, day)
        WHERE d.events IS DISTINCT FROM e.n""",
    "events on a tombstone": """
        SELECT count(*) FROM events_event e JOIN profiles_profile p ON p.id = e.profile_id
        WHERE p.merged_into_id IS NOT NULL""",
    "devices bound to a tombstone": """
        SELECT count(*) FROM profiles_device d JOIN profiles_profile p ON p.id = d.profile_id
        WHERE p.merged_into_id IS NOT NULL""",
    "events whose session belongs to another profile": """
        SELECT count(*) FROM events_event e JOIN sessions_timeline_session s ON s.id = e.session_id
        WHERE s.profile_id <> e.profile_id OR s.device_id <> e.device_id""",
    "devices whose first/last seen differ from their events": """
        SELECT count(*) FROM profiles_device d JOIN (
            SELECT device_id, min(timestamp) f, max(timestamp) l FROM events_event
            WHERE device_id IS NOT NULL GROUP BY device_id) e ON e.device_id = d.id
        WHERE d.first_seen_at <> e.f OR d.last_seen_at <> e.l""",
    "foreign keys pointing nowhere": """
        SELECT (SELECT count(*) FROM events_event e WHERE NOT EXISTS
                  (SELECT 1 FROM profiles_profile p WHERE p.id = e.profile_id))
             + (SELECT count(*) FROM sessions_timeline_session s WHERE NOT EXISTS
                  (SELECT 1 FROM profiles_device d WHERE d.id = s.device_id))
             + (SELECT count(*) FROM profiles_device d WHERE NOT EXISTS
                  (SELECT 1 FROM profiles_profile p WHERE p.id = d.profile_id))""",
}


def verify_dataset(conninfo: str) -> bool:
    import psycopg

    ok = True
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET work_mem = '256MB'")
        for label, sql in VERIFY_SQL.items():
            row = conn.execute(sql).fetchone()
            bad = row[0] if row else -1
            ok = ok and bad == 0
            log(f"verify: {bad} {label}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 profiles, 200,000 events")
    parser.add_argument("--profiles", type=int)
    parser.add_argument("--events", type=int, help="default: 10 per profile")
    parser.add_argument("--whale-events", type=int)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--force", action="store_true", help="rebuild even if the marker matches")
    parser.add_argument("--verify", action="store_true", help="check consistency after the build")
    parser.add_argument("--info", action="store_true", help="print the marker as JSON and exit")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.db import connection

    name = connection.settings_dict["NAME"]
    if connection.vendor != "postgresql" or not str(name).startswith("pushapp_bench"):
        print(
            f"refusing to build into {name!r}: the database name must start with pushapp_bench",
            file=sys.stderr,
        )
        return 2
    base = dict(QUICK if args.quick else FULL)
    if args.profiles:
        base["profiles"] = args.profiles
        base["events"] = args.events or args.profiles * 10
        base["whale_events"] = args.whale_events or max(
            1000, min(FULL["whale_events"], args.profiles)
        )
    if args.events:
        base["events"] = args.events
    if args.whale_events:
        base["whale_events"] = args.whale_events
    params = {**base, "seed": args.seed, "version": GENERATOR_VERSION}
    import psycopg

    with psycopg.connect(conninfo_from_settings(), autocommit=True) as conn:
        marker = marker_read(conn.cursor())
    if args.info:
        import json

        print(json.dumps(marker, indent=2, default=str))
        return 0
    grown = 0.0
    if marker and marker["state"] == "complete":
        with psycopg.connect(conninfo_from_settings(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'events_event'"
            ).fetchone()
            now = row[0] if row else 0
        grown = float(now) / max(marker["info"].get("events", 1), 1) - 1.0
        if grown > MAX_GROWTH:
            log(f"the dataset grew by {grown:.0%} through earlier runs: rebuilding it")
    if (
        marker
        and marker["state"] == "complete"
        and marker["params"] == params
        and grown <= MAX_GROWTH
        and not args.force
    ):
        log(f"reusing the dataset in {name} (built {marker['info'].get('built_at')}): {params}")
        if args.verify:
            return 0 if verify_dataset(conninfo_from_settings()) else 1
        return 0
    build(params, workers=args.workers, verify=args.verify)
    return 0


if __name__ == "__main__":
    sys.exit(main())
