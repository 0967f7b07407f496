"""Demo traffic for a shop app, sent through the real ingestion endpoints.

:func:`simulate` plays ``users`` people of a mobile shop over the last ``days`` days and posts
what their apps and the shop's backend would send:

- the SDK side as Segment batches to ``POST /v1/batch`` (the write key as the Basic auth user
  name, empty password): installs, app opens and backgrounds, screens, product views, cart adds,
  orders, sign-ups and logins (``identify`` with traits), logouts (Segment's ``reset()``: a new
  anonymousId) and second devices of identified users (a guest that logs in: the server merges);
- the backend side as ``POST /api/v1/events`` with the server key as Bearer token: events by
  user id only ("Invoice Paid", "Subscription Renewed").

Nothing is written to the database directly: the requests go through ``django.test.Client``, so
profiles, devices, bindings, merges and events are exactly what the ingestion path makes of them.
Everything is drawn from one ``random.Random(seed)``: the same seed gives the same people, ids
and message ids (timestamps are relative to the time of the run).
"""

from __future__ import annotations

import base64
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.http.request import validate_host
from django.test import Client, override_settings
from django.utils import timezone

from profiles.models import App

HOST = "127.0.0.1"
BATCH_SIZE = 100  # messages per request (Segment's SDKs flush at 20..100)
MAX_DAYS = 30
SEGMENT_PATH = "/v1/batch"
SERVER_PATH = "/api/v1/events"

# (sku, name, category, price)
PRODUCTS: list[tuple[str, str, str, float]] = [
    ("SKU-1001", "Trail Running Shoes", "Shoes", 89.90),
    ("SKU-1002", "Leather Sneakers", "Shoes", 119.00),
    ("SKU-1003", "Wool Socks (3 pack)", "Accessories", 14.50),
    ("SKU-1004", "Rain Jacket", "Outerwear", 129.00),
    ("SKU-1005", "Down Vest", "Outerwear", 99.00),
    ("SKU-1006", "Organic Cotton T-Shirt", "Tops", 24.90),
    ("SKU-1007", "Merino Hoodie", "Tops", 79.00),
    ("SKU-1008", "Slim Chinos", "Bottoms", 59.90),
    ("SKU-1009", "Denim Jeans", "Bottoms", 69.00),
    ("SKU-1010", "Canvas Backpack", "Bags", 49.90),
    ("SKU-1011", "Weekender Bag", "Bags", 139.00),
    ("SKU-1012", "Sunglasses", "Accessories", 39.00),
    ("SKU-1013", "Baseball Cap", "Accessories", 19.90),
    ("SKU-1014", "Running Shorts", "Bottoms", 29.90),
    ("SKU-1015", "Water Bottle", "Accessories", 17.50),
    ("SKU-1016", "Insulated Parka", "Outerwear", 249.00),
]
SEARCHES = ["shoes", "jacket", "hoodie", "backpack", "socks", "sale", "jeans", "gift"]
FIRST_NAMES = [
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas", "Mia", "Leo", "Chloe", "Hugo", "Lea",
    "Louis", "Sofia", "Adam", "Ines", "Jules", "Anna", "Paul", "Nina", "Tom", "Zoe", "Sam",
]  # fmt: skip
LAST_NAMES = [
    "Martin", "Bernard", "Dubois", "Smith", "Johnson", "Garcia", "Muller", "Rossi", "Silva",
    "Brown", "Lopez", "Wilson", "Moreau", "Fischer", "Costa", "Taylor", "Novak", "Jensen",
]  # fmt: skip
# (city, locale, time zone, phone prefix)
PLACES: list[tuple[str, str, str, str]] = [
    ("New York", "en-US", "America/New_York", "+1212"),
    ("San Francisco", "en-US", "America/Los_Angeles", "+1415"),
    ("Chicago", "en-US", "America/Chicago", "+1312"),
    ("London", "en-GB", "Europe/London", "+4420"),
    ("Manchester", "en-GB", "Europe/London", "+44161"),
    ("Paris", "fr-FR", "Europe/Paris", "+331"),
    ("Lyon", "fr-FR", "Europe/Paris", "+334"),
    ("Berlin", "de-DE", "Europe/Berlin", "+4930"),
    ("Munich", "de-DE", "Europe/Berlin", "+4989"),
    ("Madrid", "es-ES", "Europe/Madrid", "+3491"),
    ("Lisbon", "pt-PT", "Europe/Lisbon", "+35121"),
    ("Amsterdam", "nl-NL", "Europe/Amsterdam", "+3120"),
]
# platform -> [(model, manufacturer, [os versions], (width, height))]
PHONES: dict[str, list[tuple[str, str, list[str], tuple[int, int]]]] = {
    "ios": [
        ("iPhone14,5", "Apple", ["16.7.8", "17.5.1"], (390, 844)),
        ("iPhone15,2", "Apple", ["17.5.1", "17.6"], (393, 852)),
        ("iPhone16,1", "Apple", ["17.6", "18.0"], (393, 852)),
        ("iPhone12,1", "Apple", ["16.7.8", "17.5.1"], (414, 896)),
    ],
    "android": [
        ("Pixel 8", "Google", ["14"], (412, 915)),
        ("Pixel 6a", "Google", ["13", "14"], (412, 892)),
        ("SM-S911B", "samsung", ["13", "14"], (360, 780)),
        ("SM-A546B", "samsung", ["13", "14"], (384, 854)),
        ("2201116SG", "Xiaomi", ["12", "13"], (393, 873)),
    ],
}
TABLETS: dict[str, list[tuple[str, str, list[str], tuple[int, int]]]] = {
    "ios": [("iPad13,18", "Apple", ["17.5.1", "17.6"], (820, 1180))],
    "android": [("SM-X710", "samsung", ["14"], (800, 1280))],
}
OS_NAMES = {"ios": "iOS", "android": "Android"}
LIBRARIES = {"ios": ("analytics-ios", "4.1.8"), "android": ("analytics-android", "4.11.3")}
APP_VERSIONS = [("2.3.0", "230"), ("2.4.0", "240"), ("2.4.1", "241")]
PLANS = [("free", 0.0), ("plus", 4.99), ("pro", 9.99)]


class SimulationError(RuntimeError):
    """The server refused valid traffic; the message carries the request and the response."""


@dataclass
class SimulationReport:
    people: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        people = ", ".join(f"{count} {kind}" for kind, count in sorted(self.people.items()))
        return (
            f"{sum(self.people.values())} people ({people}); "
            f"{self.messages['segment']} SDK messages to {SEGMENT_PATH} and "
            f"{self.messages['server']} backend events to {SERVER_PATH} "
            f"in {self.requests} requests, {self.seconds:.1f}s"
        )


@dataclass
class _Phone:
    """A physical device: its context stays the same across the app's anonymousIds on it."""

    platform: str
    context: dict[str, Any]


@dataclass
class _Install:
    """What the SDK on one phone currently holds: its anonymousId and (once identified) userId."""

    phone: _Phone
    anonymous_id: str
    user_id: str | None = None


@dataclass
class _Person:
    index: int
    user_id: str
    traits: dict[str, Any]
    plan: str
    place: tuple[str, str, str, str]


@dataclass(order=True)
class _Entry:
    at: datetime
    seq: int
    channel: str = field(compare=False)  # "segment" | "server"
    body: dict[str, Any] = field(compare=False)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Story:
    """Builds the timeline of every message, then :func:`simulate` sends it in time order."""

    def __init__(self, *, rng: random.Random, now: datetime, days: int, app_name: str) -> None:
        self.rng = rng
        self.now = now
        # Nothing earlier than the window's start, nothing later than a few minutes ago.
        self.start = now - timedelta(days=days) + timedelta(minutes=30)
        self.latest = now - timedelta(minutes=5)
        self.app_name = app_name
        self.entries: list[_Entry] = []
        self.people: Counter[str] = Counter()

    # -- ids and draws ---------------------------------------------------------------------

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def between(self, low: datetime, high: datetime) -> datetime:
        if high <= low:
            return low
        return low + timedelta(seconds=self.rng.uniform(0, (high - low).total_seconds()))

    def duration(self, low: timedelta, high: timedelta) -> timedelta:
        return low + (high - low) * self.rng.random()

    def phone(self, place: tuple[str, str, str, str], *, tablet: bool = False) -> _Phone:
        platform = "ios" if self.rng.random() < 0.55 else "android"
        model, manufacturer, versions, (width, height) = self.rng.choice(
            (TABLETS if tablet else PHONES)[platform]
        )
        version, build = self.rng.choices(APP_VERSIONS, weights=[1, 2, 5])[0]
        library, library_version = LIBRARIES[platform]
        device: dict[str, Any] = {
            "id": self.uuid().upper() if platform == "ios" else self.uuid().replace("-", "")[:16],
            "manufacturer": manufacturer,
            "model": model,
            "type": platform,
            "adTrackingEnabled": self.rng.random() < 0.3,
        }
        if self.rng.random() < 0.6:  # push permission granted: the SDK sends the token
            device["token"] = (
                f"{self.rng.getrandbits(256):064x}"
                if platform == "ios"
                else base64.urlsafe_b64encode(self.rng.randbytes(105)).decode().rstrip("=")
            )
        context = {
            "app": {
                "name": self.app_name,
                "version": version,
                "build": build,
                "namespace": "com.example.demoshop",
            },
            "device": device,
            "library": {"name": library, "version": library_version},
            "locale": place[1],
            "network": {"wifi": self.rng.random() < 0.6, "cellular": True},
            "os": {"name": OS_NAMES[platform], "version": self.rng.choice(versions)},
            "screen": {"width": width, "height": height},
            "timezone": place[2],
        }
        return _Phone(platform=platform, context=context)

    def person(self, index: int) -> _Person:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        place = self.rng.choice(PLACES)
        plan = self.rng.choices([name for name, _ in PLANS], weights=[6, 3, 1])[0]
        user_id = f"usr_{10001 + index}"
        traits = {
            "email": f"{first}.{last}.{10001 + index}@example.com".lower(),
            "firstName": first,
            "lastName": last,
            "phone": f"{place[3]}{self.rng.randrange(10**6, 10**7)}",
            "address": {"city": place[0]},
            "plan": plan,
        }
        return _Person(index=index, user_id=user_id, traits=traits, plan=plan, place=place)

    # -- messages --------------------------------------------------------------------------

    def _add(self, at: datetime, channel: str, body: dict[str, Any]) -> None:
        self.entries.append(_Entry(at=at, seq=len(self.entries), channel=channel, body=body))

    def segment(self, install: _Install, at: datetime, kind: str, **fields: Any) -> None:
        body: dict[str, Any] = {
            "type": kind,
            "messageId": self.uuid(),
            "timestamp": _iso(at),
            "anonymousId": install.anonymous_id,
            **fields,
            "context": install.phone.context,
        }
        if install.user_id is not None:
            body["userId"] = install.user_id
        self._add(at, "segment", body)

    def track(
        self, install: _Install, at: datetime, event: str, properties: dict[str, Any]
    ) -> None:
        self.segment(install, at, "track", event=event, properties=properties)

    def screen(self, install: _Install, at: datetime, screen: str, **properties: Any) -> None:
        self.segment(install, at, "screen", name=screen, properties=properties)

    def backend(self, at: datetime, user_id: str, name: str, properties: dict[str, Any]) -> None:
        """An event the shop's backend sends by user id only, with the server key."""
        self._add(
            at,
            "server",
            {
                "type": "track",
                "name": name,
                "user_id": user_id,
                "timestamp": _iso(at),
                "message_id": self.uuid(),
                "properties": properties,
                "context": {"library": {"name": "demoshop-billing", "version": "1.8.2"}},
            },
        )

    # -- one app session: open, browse, maybe buy, background -------------------------------

    def session(
        self,
        install: _Install,
        at: datetime,
        *,
        first: bool = False,
        sign_up: _Person | None = None,
        log_in: _Person | None = None,
        log_out: bool = False,
        traits_update: dict[str, Any] | None = None,
    ) -> datetime:
        """Play one session from ``at``; returns when it ended."""
        rng = self.rng
        clock = at

        def later(low: float = 4, high: float = 40) -> datetime:
            nonlocal clock
            clock += timedelta(seconds=rng.uniform(low, high))
            return clock

        app_info = install.phone.context["app"]
        version = {"version": app_info["version"], "build": app_info["build"]}
        if first:
            self.track(install, clock, "Application Installed", version)
            later(1, 3)
        self.track(
            install,
            clock,
            "Application Opened",
            {**version, "from_background": not first and rng.random() < 0.35},
        )
        self.screen(install, later(1, 2), "Home")
        # A login usually comes after a look around (the guest has events to merge).
        identify_after = rng.randrange(0, 3) if (sign_up or log_in) else -1
        views = rng.choices([0, 1, 2, 3, 4], weights=[2, 4, 3, 2, 1])[0]
        cart: list[tuple[str, str, str, float, int]] = []
        for step in range(max(views, identify_after + 1)):
            if step == identify_after:
                self._identify(install, later(), sign_up=sign_up, log_in=log_in)
            if step >= views:
                continue
            if rng.random() < 0.4:
                self.screen(install, later(), "Search", query=rng.choice(SEARCHES))
            sku, name, category, price = rng.choice(PRODUCTS)
            product = {
                "product_id": sku,
                "sku": sku,
                "name": name,
                "category": category,
                "price": price,
                "currency": "USD",
            }
            self.screen(install, later(), "Product", product_id=sku, product_name=name)
            self.track(install, later(1, 3), "Product Viewed", product)
            if rng.random() < 0.35:
                quantity = rng.choices([1, 2, 3], weights=[8, 2, 1])[0]
                self.track(
                    install, later(5, 30), "Product Added", {**product, "quantity": quantity}
                )
                cart.append((sku, name, category, price, quantity))
        if cart and rng.random() < 0.7:
            self.screen(install, later(), "Cart", items=len(cart))
            if rng.random() < (0.55 if install.user_id else 0.2):
                self._order(install, cart, later(), later(20, 90))
        if traits_update:
            self.segment(install, later(), "identify", traits=traits_update)
        if log_out:
            self.track(install, later(), "Signed Out", {})
            # Segment's reset(): the SDK forgets the user id and makes a new anonymousId.
            install.user_id = None
            install.anonymous_id = self.uuid()
        self.track(install, later(5, 120), "Application Backgrounded", {})
        return clock

    def _identify(
        self, install: _Install, at: datetime, *, sign_up: _Person | None, log_in: _Person | None
    ) -> None:
        person = sign_up or log_in
        assert person is not None
        install.user_id = person.user_id
        if sign_up is not None:
            traits = {**person.traits, "createdAt": _iso(at)}
            self.segment(install, at, "identify", traits=traits)
            self.track(install, at + timedelta(seconds=1), "Signed Up", {"method": "email"})
        else:
            self.segment(install, at, "identify", traits={"email": person.traits["email"]})
            self.track(install, at + timedelta(seconds=1), "Signed In", {"method": "password"})

    def _order(
        self,
        install: _Install,
        cart: list[tuple[str, str, str, float, int]],
        checkout_at: datetime,
        paid_at: datetime,
    ) -> None:
        self.screen(install, checkout_at, "Checkout", items=len(cart))
        total = round(sum(price * quantity for _, _, _, price, quantity in cart), 2)
        order_id = f"ord_{self.rng.getrandbits(40):010x}"
        self.track(
            install,
            paid_at,
            "Order Completed",
            {
                "order_id": order_id,
                "total": total,
                "revenue": total,
                "currency": "USD",
                "products": [
                    {
                        "product_id": sku,
                        "name": name,
                        "category": category,
                        "price": price,
                        "quantity": qty,
                    }
                    for sku, name, category, price, qty in cart
                ],
            },
        )
        if install.user_id is not None:  # the payment provider's webhook, a little later
            self.backend(
                paid_at + timedelta(seconds=self.rng.uniform(20, 180)),
                install.user_id,
                "Invoice Paid",
                {
                    "invoice_id": f"inv_{self.rng.getrandbits(40):010x}",
                    "order_id": order_id,
                    "amount": total,
                    "currency": "USD",
                    "reason": "order",
                },
            )

    # -- people ----------------------------------------------------------------------------

    def play(
        self,
        install: _Install,
        starts_at: datetime,
        count: int,
        plan: dict[int, dict[str, Any]] | None = None,
    ) -> list[datetime]:
        """Play up to ``count`` sessions from ``starts_at``, hours to days apart, as many as fit
        in the window; ``plan`` gives a session's options by number. Returns the starts."""
        plan = plan or {}
        window = self.latest - self.start
        longest_gap = min(timedelta(days=4), window / 4)
        starts: list[datetime] = []
        at = starts_at
        for number in range(count):
            if at > self.latest - timedelta(minutes=30):
                break
            starts.append(at)
            end = self.session(install, at, first=number == 0, **plan.get(number, {}))
            at = end + self.duration(timedelta(hours=1), max(timedelta(hours=1), longest_gap))
        return starts

    def guest(self) -> None:
        """Browses (and sometimes buys as a guest), never signs in."""
        self.people["guest"] += 1
        place = self.rng.choice(PLACES)
        install = _Install(phone=self.phone(place), anonymous_id=self.uuid())
        self.play(
            install,
            self.between(self.start, self.latest - timedelta(hours=2)),
            self.rng.randint(1, 4),
        )

    def member(
        self, index: int, *, second_device: bool, log_out: bool, forced: bool = False
    ) -> None:
        """Installs, signs up at some point; maybe logs out (and back in later: the server
        merges the guest of the new anonymousId), maybe a second device (a guest there first,
        then a login: merged too). ``forced``: early in the window, every step happens."""
        person = self.person(index)
        install = _Install(phone=self.phone(person.place), anonymous_id=self.uuid())
        busy = second_device or log_out
        window = self.latest - self.start
        starts_before = (
            self.start + window / 3 if forced else self.latest - window / (4 if busy else 8)
        )
        count = self.rng.randint(3, 8) if busy else self.rng.randint(1, 7)
        sign_up_at = 0 if forced or self.rng.random() < 0.5 else self.rng.randint(0, count - 1)
        plan: dict[int, dict[str, Any]] = {sign_up_at: {"sign_up": person}}
        if log_out:
            plan[sign_up_at + 1] = {"log_out": True}
            if forced or self.rng.random() < 0.7:
                plan[sign_up_at + (2 if forced else self.rng.randint(2, 3))] = {"log_in": person}
        if person.plan == "free" and self.rng.random() < 0.15:
            later = sign_up_at + self.rng.randint(1, 4)
            if later not in plan:
                plan[later] = {"traits_update": {"plan": "plus"}}
                person.plan = "plus"
        starts = self.play(install, self.between(self.start, starts_before), count, plan)
        if len(starts) <= sign_up_at:
            self.people["guest (did not get to sign up)"] += 1
            return
        signed_up_at = starts[sign_up_at]
        kind = "member"
        if log_out and len(starts) > sign_up_at + 1:
            kind = "member who logged out"
            logged_in_again = [n for n, options in plan.items() if "log_in" in options]
            if logged_in_again and len(starts) > logged_in_again[0]:
                kind = "member who logged out and in again"
        if second_device:
            tablet = self.rng.random() < 0.4
            other = _Install(
                phone=self.phone(person.place, tablet=tablet), anonymous_id=self.uuid()
            )
            low = signed_up_at + timedelta(hours=1)
            log_in_at = 0 if forced or self.rng.random() < 0.6 else 1
            other_starts = self.play(
                other,
                self.between(low, max(low, self.latest - window / 10)),
                self.rng.randint(log_in_at + 1, 3),
                {log_in_at: {"log_in": person}},
            )
            if len(other_starts) > log_in_at:
                kind = "member with a second device"
        self.people[kind] += 1
        self.subscription(person, signed_up_at)

    def subscription(self, person: _Person, signed_up_at: datetime) -> None:
        """Paid plans renew once in the window (billing by the backend, by user id)."""
        if person.plan == "free":
            return
        earliest = signed_up_at + timedelta(days=1)
        if earliest >= self.latest:
            return
        at = self.between(earliest, self.latest)
        amount = dict(PLANS)[person.plan]
        self.backend(
            at,
            person.user_id,
            "Subscription Renewed",
            {"plan": person.plan, "amount": amount, "currency": "USD", "period": "monthly"},
        )
        self.backend(
            at + timedelta(seconds=2),
            person.user_id,
            "Invoice Paid",
            {
                "invoice_id": f"inv_{self.rng.getrandbits(40):010x}",
                "amount": amount,
                "currency": "USD",
                "reason": "subscription",
            },
        )

    def everyone(self, users: int) -> None:
        for index in range(users):
            # The first three make sure every kind is there, even with --users 3.
            if index == 0:
                self.guest()
            elif index == 1:
                self.member(index, second_device=True, log_out=False, forced=True)
            elif index == 2:
                self.member(index, second_device=False, log_out=True, forced=True)
            elif self.rng.random() < 0.35:
                self.guest()
            else:
                self.member(
                    index,
                    second_device=self.rng.random() < 0.15,
                    log_out=self.rng.random() < 0.2,
                )


class _Sender:
    """Posts the timeline in time order: SDK messages in /v1/batch requests of up to 100 and
    backend events to /api/v1/events (after the SDK messages before them)."""

    def __init__(self, *, write_key: str, server_key: str, report: SimulationReport) -> None:
        self.client = Client(SERVER_NAME=HOST)
        basic = base64.b64encode(f"{write_key}:".encode()).decode()
        self.write_auth = f"Basic {basic}"
        self.server_auth = f"Bearer {server_key}"
        self.segment: list[dict[str, Any]] = []
        self.server: list[dict[str, Any]] = []
        self.report = report

    def add(self, entry: _Entry) -> None:
        if entry.channel == "segment":
            self.segment.append(entry.body)
            if len(self.segment) >= BATCH_SIZE:
                self.flush()
        else:
            self.server.append(entry.body)
            if len(self.server) >= BATCH_SIZE:
                self.flush()

    def flush(self) -> None:
        if self.segment:
            sent_at = _iso(timezone.now())
            self._post(SEGMENT_PATH, {"batch": self.segment, "sentAt": sent_at}, self.write_auth)
            self.report.messages["segment"] += len(self.segment)
            self.segment = []
        if self.server:
            self._post(SERVER_PATH, {"events": self.server}, self.server_auth)
            self.report.messages["server"] += len(self.server)
            self.server = []

    def _post(self, path: str, body: dict[str, Any], auth: str) -> None:
        data = orjson.dumps(body)
        response = self.client.post(
            path,
            data=data,
            content_type="application/json",
            secure=True,  # SECURE_SSL_REDIRECT would answer a plain request with a 301
            HTTP_AUTHORIZATION=auth,
        )
        self.report.requests += 1
        content = response.content.decode(errors="replace")
        problem = response.status_code != 200
        if not problem:
            result = orjson.loads(response.content)
            problem = bool(result.get("rejected") or result.get("duplicates"))
        if problem:
            first = orjson.dumps(body.get("batch", body.get("events", [None]))[0]).decode()
            raise SimulationError(
                f"POST {path} ({len(data)} bytes) answered {response.status_code}: "
                f"{content[:2000]}\nfirst message of the request: {first[:1500]}"
            )


@contextmanager
def _host_allowed() -> Iterator[None]:
    """The in-process client talks to 127.0.0.1; let that host through when ALLOWED_HOSTS
    (production) does not list it. Nothing goes over the network."""
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    if validate_host(HOST, allowed):
        yield
        return
    with override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, HOST]):
        yield


@contextmanager
def _quiet_task_log() -> Iterator[None]:
    """Without a broker, merges run in-process and Celery logs a line per task: not here."""
    logger = logging.getLogger("celery.app.trace")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def simulate(
    *,
    app: App,
    write_key: str,
    server_key: str,
    users: int = 300,
    days: int = 30,
    seed: int = 1,
) -> SimulationReport:
    """Send ``users`` people's traffic of the last ``days`` days (at most 30) to ``app``."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    if users < 1:
        raise ValueError("users must be at least 1")
    if write_key != app.write_key:
        raise ValueError("write_key is not this app's write key")
    started = time.monotonic()
    story = _Story(rng=random.Random(seed), now=timezone.now(), days=days, app_name=app.name)
    story.everyone(users)
    report = SimulationReport(people=story.people)
    sender = _Sender(write_key=write_key, server_key=server_key, report=report)
    with _host_allowed(), _quiet_task_log():
        for entry in sorted(story.entries):
            sender.add(entry)
        sender.flush()
    report.seconds = time.monotonic() - started
    return report
