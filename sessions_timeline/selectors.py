"""The timeline read model: a profile's activity newest first, sessions (with their latest
events) and standalone events interleaved by time, paginated by keyset.

Cost: two index range scans of ``limit + 1`` rows (sessions by ``(profile, started_at)``,
standalone events by the partial index on ``(profile, timestamp) WHERE session IS NULL``) and
one read of the page's session events, bounded by the page's time span: independent of how
long the history is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import orjson
from django.db import connection
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber

from events.models import Event
from profiles.models import Profile
from pushapp.api import ApplicationError
from sessions_timeline.models import ProfileDailyActivity, Session

EVENTS_PER_SESSION = 20
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
    standalone = Event.objects.filter(profile=profile, session__isnull=True)
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
    """The newest events of each session on the page. On PostgreSQL one statement: per session
    a LATERAL index range scan of the timeline index over that session's own span, LIMIT 20,
    so the cost is the page's events, whatever the profile's history."""
    sessions = {item.session.pk: item for item in items if item.session is not None}
    if not sessions:
        return
    events: Iterable[Event]
    if connection.vendor == "postgresql":
        spans = [
            (
                item.session.pk,
                item.session.started_at,
                item.session.ended_at or item.session.last_event_at,
            )
            for item in items
            if item.session is not None
        ]
        events = Event.objects.raw(
            """
            SELECT e.* FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[])
                AS s(id, started, ended)
            CROSS JOIN LATERAL (
                SELECT * FROM events_event
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
    else:
        events = (
            Event.objects.filter(profile=profile, session_id__in=list(sessions))
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
