"""The session rules (docs/sessions.md), as a pure in-memory algorithm shared by ingestion and
re-sync. It sees the candidate sessions of the devices involved and the new events, decides
which session each event joins, and reports which sessions are new or changed; callers load
and write with a constant number of statements.

Rules, per device:
1. An SDK session id (``context.sessionId``, ``context.session_id``, the native ``session_id``
   or ``properties.$session_id``) names the session, together with the device.
2. ``Application Opened`` starts a new session, unless it falls inside an existing session's
   span (a late duplicate).
3. Otherwise an event joins the session of the same person whose span (start to last event)
   contains it; else the latest one it follows within the app's inactivity timeout, unless that
   session was ended by ``Application Backgrounded``; else one it precedes by less than the
   timeout (the session then starts earlier). Otherwise it starts a new session.
4. ``Application Backgrounded`` joins its session by the rules above and ends it.
Events without a device (server-side) are outside sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sessions_timeline.models import Session

APP_OPENED = "Application Opened"
APP_BACKGROUNDED = "Application Backgrounded"


@dataclass
class SessionEvent:
    """What sessionization needs to know of one event."""

    key: Any  # the caller's handle for the event
    device_id: int
    profile_id: int
    timestamp: datetime
    type: str
    name: str
    sdk_session_id: str | None = None
    app_version: str = ""


def sdk_session_id(context: dict[str, Any], properties: dict[str, Any]) -> str | None:
    """The SDK's session id, wherever the SDK put it."""
    for value in (
        context.get("sessionId"),
        context.get("session_id"),
        properties.get("$session_id"),
    ):
        if value is not None and value != "" and not isinstance(value, dict | list | bool):
            return str(value)[:128]
    return None


class Sessionizer:
    """Assigns events to sessions in memory; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        app_id: int,
        timeout: timedelta,
        existing: Iterable[Session],
        same_person: Callable[[int, int], bool] | None = None,
    ) -> None:
        self.app_id = app_id
        self.timeout = timeout
        self.same_person = same_person or (lambda a, b: a == b)
        self.by_device: dict[int, list[Session]] = {}
        self.by_sdk_id: dict[tuple[int, str], Session] = {}
        for session in existing:
            self._index(session)
        self.new: list[Session] = []
        self.changed: dict[int, Session] = {}

    def _index(self, session: Session) -> None:
        self.by_device.setdefault(session.device_id, []).append(session)
        if session.sdk_session_id:
            self.by_sdk_id[(session.device_id, session.sdk_session_id)] = session

    def assign(self, events: Iterable[SessionEvent]) -> dict[Any, Session]:
        """The session of each event (by its key), events taken in time order per device."""
        assigned: dict[Any, Session] = {}
        for event in sorted(events, key=lambda e: (e.device_id, e.timestamp)):
            session = self._session_for(event)
            self._add(session, event)
            assigned[event.key] = session
        return assigned

    def _session_for(self, event: SessionEvent) -> Session:
        if event.sdk_session_id:
            found = self.by_sdk_id.get((event.device_id, event.sdk_session_id))
            return found or self._start(event, sdk_session_id=event.sdk_session_id)
        candidates = [
            s
            for s in self.by_device.get(event.device_id, [])
            if not s.sdk_session_id and self.same_person(s.profile_id, event.profile_id)
        ]
        at = event.timestamp
        inside = [s for s in candidates if s.started_at <= at <= _end(s)]
        if inside:
            return max(inside, key=lambda s: s.started_at)
        if event.name == APP_OPENED:
            return self._start(event)
        before = [
            s
            for s in candidates
            if _end(s) < at and at - _end(s) <= self.timeout and s.ended_at is None
        ]
        if before:
            return max(before, key=_end)
        after = [s for s in candidates if at < s.started_at and s.started_at - at <= self.timeout]
        if after:
            return min(after, key=lambda s: s.started_at)
        return self._start(event)

    def _start(self, event: SessionEvent, *, sdk_session_id: str | None = None) -> Session:
        session = Session(
            app_id=self.app_id,
            profile_id=event.profile_id,
            device_id=event.device_id,
            sdk_session_id=sdk_session_id,
            started_at=event.timestamp,
            last_event_at=event.timestamp,
            event_count=0,
            screen_count=0,
            app_version=event.app_version,
        )
        self.new.append(session)
        self._index(session)
        return session

    def _add(self, session: Session, event: SessionEvent) -> None:
        at = event.timestamp
        session.started_at = min(session.started_at, at)
        session.last_event_at = max(session.last_event_at, at)
        session.event_count += 1
        if event.type == "screen":
            session.screen_count += 1
        if event.app_version and (not session.app_version or at >= session.last_event_at):
            session.app_version = event.app_version
        if event.name == APP_BACKGROUNDED:
            session.ended_at = max(session.ended_at or at, at)
        if session.pk is not None:
            self.changed[session.pk] = session


def _end(session: Session) -> datetime:
    return session.ended_at or session.last_event_at
