"""The timeline read model: a profile's activity newest first, sessions (each with its
``EVENTS_PER_SESSION`` = 5 newest events and how many more it holds) and standalone events
interleaved by time, paginated by keyset.

Cost: two index range scans of ``limit + 1`` rows (sessions by ``(profile, started_at)``,
standalone events by the partial index on ``(profile, timestamp) WHERE session IS NULL``) and
one read of at most 5 events per session on the page: independent of how long the history is
and of how many events a session has. Events are read with ``TIMELINE_EVENT_FIELDS`` only (never
the large ``context`` JSON); a session's full event list is the profile events API over its
span.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import orjson
from django.db import connection, transaction
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber

from events.models import Event
from profiles.models import Profile
from pushapp.api import ApplicationError
from sessions_timeline.models import ProfileDailyActivity, Session

EVENTS_PER_SESSION = 5
# The event columns the timeline's readers use (the API's item JSON, the admin profile page and
# its PII masking): every other column, ``context`` above all, is deferred. ``session_id``
# groups a session's events; the primary key is required by ``raw()`` for deferred loading.
TIMELINE_EVENT_FIELDS = (
    "id",
    "session_id",
    "message_id",
    "type",
    "name",
    "timestamp",
    "properties",
    "source",
)
MAX_LIMIT = 100
# Sessions sort before standalone events of the same instant.
KIND_RANK = {"session": 1, "event": 0}


@dataclass(frozen=True)
class Cursor:
    at: datetime
    kind: Literal["session", "event"]
    pk: int

    def encode(self) -> str:
        raw = orjson.dumps([self.at.isoformat(), self.kind, self.pk])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            padded = text + "=" * (-len(text) % 4)
            at, kind, pk = orjson.loads(base64.urlsafe_b64decode(padded))
            if kind not in KIND_RANK or not isinstance(pk, int):
                raise ValueError(kind)
            return cls(at=datetime.fromisoformat(at), kind=kind, pk=pk)
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise ApplicationError("The cursor is not valid.", code="invalid_cursor") from None


@dataclass
class TimelineItem:
    kind: Literal["session", "event"]
    at: datetime
    session: Session | None = None
    event: Event | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def key(self) -> tuple[datetime, int, int]:
        record = self.session if self.session is not None else self.event
        assert record is not None
        return (self.at, KIND_RANK[self.kind], record.pk)

    @property
    def more_events(self) -> int:
        return max(0, self.session.event_count - len(self.events)) if self.session else 0


@dataclass
class TimelinePage:
    items: list[TimelineItem]
    next_cursor: str | None


def timeline_page(*, profile: Profile, cursor: str | None = None, limit: int = 20) -> TimelinePage:
    """One page of ``profile``'s timeline, newest first, after ``cursor`` (opaque)."""
    limit = max(1, min(limit, MAX_LIMIT))
    after = Cursor.decode(cursor) if cursor else None
    sessions = Session.objects.filter(profile=profile).select_related("device")
    standalone = Event.objects.filter(profile=profile, session__isnull=True).only(
        *TIMELINE_EVENT_FIELDS
    )
    if after is not None:
        if after.kind == "session":
            sessions = sessions.filter(
                Q(started_at__lt=after.at) | Q(started_at=after.at, pk__lt=after.pk)
            )
            standalone = standalone.filter(timestamp__lte=after.at)
        else:
            sessions = sessions.filter(started_at__lt=after.at)
            standalone = standalone.filter(
                Q(timestamp__lt=after.at) | Q(timestamp=after.at, pk__lt=after.pk)
            )
    items = [
        TimelineItem(kind="session", at=session.started_at, session=session)
        for session in sessions.order_by("-started_at", "-pk")[: limit + 1]
    ] + [
        TimelineItem(kind="event", at=event.timestamp, event=event)
        for event in standalone.order_by("-timestamp", "-pk")[: limit + 1]
    ]
    items.sort(key=lambda item: item.key, reverse=True)
    page, rest = items[:limit], items[limit:]
    _attach_session_events(profile, [item for item in page if item.session is not None])
    next_cursor = None
    if rest:
        last = page[-1]
        next_cursor = Cursor(at=last.at, kind=last.kind, pk=last.key[2]).encode()
    return TimelinePage(items=page, next_cursor=next_cursor)


def _attach_session_events(profile: Profile, items: list[TimelineItem]) -> None:
    """The ``EVENTS_PER_SESSION`` newest events of each session on the page, with the columns
    of ``TIMELINE_EVENT_FIELDS`` only. On PostgreSQL one statement: per session a LATERAL index
    range scan of the timeline index from the newest end of that session's own span, LIMIT 5,
    so the cost is at most 5 events per session on the page, whatever the profile's history
    and however many events a session holds."""
    sessions = {item.session.pk: item for item in items if item.session is not None}
    if not sessions:
        return
    events: Iterable[Event]
    if connection.vendor == "postgresql":
        # The span's newest end is ``last_event_at``, the newest timestamp of the session's
        # events; ``ended_at`` (its newest Application Backgrounded) can be older when an event
        # with the same SDK session id followed it, so it is not the bound on its own.
        on_page = [item.session for item in items if item.session is not None]
        spans = [
            (s.pk, s.started_at, max(s.last_event_at, s.ended_at or s.last_event_at))
            for s in on_page
        ]
        quote = connection.ops.quote_name
        # Event's attribute names are its column names (no db_column).
        columns = [quote(name) for name in TIMELINE_EVENT_FIELDS]
        query = Event.objects.raw(
            f"""
            SELECT {", ".join(f"e.{column}" for column in columns)}
            FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[])
                AS s(id, started, ended)
            CROSS JOIN LATERAL (
                SELECT {", ".join(columns)} FROM {quote(Event._meta.db_table)}
                WHERE profile_id = %s AND session_id = s.id
                  AND timestamp >= s.started AND timestamp <= s.ended
                ORDER BY timestamp DESC, id DESC
                LIMIT %s
            ) AS e
            ORDER BY e.timestamp DESC, e.id DESC
            """,
            [
                [span[0] for span in spans],
                [span[1] for span in spans],
                [span[2] for span in spans],
                profile.pk,
                EVENTS_PER_SESSION,
            ],
        )
        # For a profile with a long history PostgreSQL estimates many rows in a session's span
        # and reads all of them with a bitmap scan, then sorts: the whale's first page read
        # 1,117 heap pages (10.7 ms) where walking the timeline index newest first and stopping
        # at 5 reads about 30 (0.3 ms). The setting is local to this transaction (or savepoint).
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            events = list(query)
            cursor.execute("SET LOCAL enable_bitmapscan TO DEFAULT")
    else:
        events = (
            Event.objects.filter(profile=profile, session_id__in=list(sessions))
            .only(*TIMELINE_EVENT_FIELDS)
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("session_id")],
                    order_by=[F("timestamp").desc(), F("pk").desc()],
                )
            )
            .filter(rank__lte=EVENTS_PER_SESSION)
            .order_by("-timestamp", "-pk")
        )
    for event in events:
        assert event.session_id is not None
        sessions[event.session_id].events.append(event)


def daily_activity(
    *, profile: Profile, days: int = 90, today: date | None = None
) -> list[tuple[date, int]]:
    """Events per day over the last ``days`` days, oldest first, zeros included."""
    today = today or datetime.now(UTC).date()
    start = today - timedelta(days=days - 1)
    counts = dict(
        ProfileDailyActivity.objects.filter(
            profile=profile, day__gte=start, day__lte=today
        ).values_list("day", "events")
    )
    return [
        (start + timedelta(days=n), counts.get(start + timedelta(days=n), 0)) for n in range(days)
    ]
