"""The ingestion path (DESIGN.md section 6): one transaction per request, a constant number of
SQL statements per batch, duplicates dropped by ``(app, message_id)``.

Callers (the Segment and native APIs) turn their payloads into :class:`IncomingMessage` items;
identity is decided by :func:`profiles.identity.resolve_batch`, never here.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from events.models import Event
from profiles.identity import (
    IdentityRequest,
    Resolved,
    in_retrying_transaction,
    resolve_batch,
)
from profiles.models import App, Device, Profile
from pushapp.api import ApplicationError
from pushapp.db import binary_cursor, json_text
from sessions_timeline.models import Session
from sessions_timeline.services import daily_activity_add, sessions_assign
from sessions_timeline.sessionize import SessionEvent, sdk_session_id

MAX_MESSAGE_ID_LENGTH = 100


@dataclass
class IncomingMessage:
    """One validated message: its identity part and, unless ``store_event`` is off, its event."""

    identity: IdentityRequest
    type: str
    name: str = ""
    message_id: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    original_timestamp: datetime | None = None
    store_event: bool = True


@dataclass
class ItemResult:
    index: int
    status: str  # accepted | duplicate | rejected
    message_id: str | None = None
    code: str | None = None
    message: str | None = None
    profile: Profile | None = None
    device: Device | None = None


@dataclass
class BatchResult:
    items: list[ItemResult]

    @property
    def accepted(self) -> int:
        return sum(1 for item in self.items if item.status == "accepted")

    @property
    def duplicates(self) -> int:
        return sum(1 for item in self.items if item.status == "duplicate")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [
            {"index": item.index, "code": item.code, "message": item.message}
            for item in self.items
            if item.status == "rejected"
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "success": True,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": len(self.errors),
            "errors": self.errors,
        }


class _AlreadyStored(Exception):
    """The optimistic pass of :func:`ingest` met message ids stored before."""


def rejected(index: int, error: ApplicationError) -> ItemResult:
    return ItemResult(index=index, status="rejected", code=error.code, message=error.message)


def new_message_id() -> str:
    return str(uuid.uuid4())


def ingest(
    *,
    app: App,
    messages: list[IncomingMessage],
    received_at: datetime,
    source: str,
    prior_results: list[ItemResult] | None = None,
) -> BatchResult:
    """Store ``messages`` in one transaction and return per-item results (with
    ``prior_results``, the items the caller already refused, merged in index order).

    A message id seen before (in this batch or stored earlier) is a duplicate: its event is
    not stored again and counts nothing.
    """
    seen: set[str] = set()
    unique: list[IncomingMessage] = []
    results: dict[int, ItemResult] = {item.index: item for item in prior_results or []}
    for message in messages:
        if message.store_event and message.message_id in seen:
            results[message.identity.index] = ItemResult(
                index=message.identity.index, status="duplicate", message_id=message.message_id
            )
            continue
        seen.add(message.message_id)
        unique.append(message)

    def work(*, look_up_known: bool) -> dict[int, ItemResult]:
        resolver, resolved = resolve_batch(
            app=app, requests=[message.identity for message in unique]
        )
        candidates = [
            (message, outcome)
            for message, outcome in zip(unique, resolved, strict=True)
            if outcome.error is None and message.store_event
        ]
        known = (
            events_known(app=app, message_ids=[m.message_id for m, _ in candidates])
            if look_up_known
            else set()
        )
        stored = [(m, outcome) for m, outcome in candidates if m.message_id not in known]
        sessions, new_sessions = sessions_assign(
            app=app,
            events=[
                _session_event(message, outcome) for message, outcome in stored if outcome.device
            ],
            same_person=resolver.same_person,
        )
        inserted = events_insert(
            app=app, rows=stored, sessions=sessions, received_at=received_at, source=source
        )
        if not look_up_known and len(inserted) < len(stored):
            # Some were stored before (a retried batch): the sessions and counters above
            # counted them. Roll back and run again, looking them up first.
            raise _AlreadyStored
        activity = [
            (outcome.profile, outcome.device, message.identity.timestamp, 1)
            for message, outcome in stored
            if message.message_id in inserted and outcome.profile is not None
        ]
        daily_activity_add(
            counts=Counter(
                (profile.pk, at.astimezone(UTC).date()) for profile, _, at, _ in activity
            )
        )
        resolver.save_activity(activity, new_sessions=new_sessions)
        outcomes: dict[int, ItemResult] = {}
        for message, outcome in zip(unique, resolved, strict=True):
            index = message.identity.index
            if outcome.error is not None:
                outcomes[index] = rejected(index, outcome.error)
            else:
                duplicate = message.store_event and message.message_id not in inserted
                outcomes[index] = ItemResult(
                    index=index,
                    status="duplicate" if duplicate else "accepted",
                    message_id=message.message_id if message.store_event else None,
                    profile=outcome.profile,
                    device=outcome.device,
                )
        return outcomes

    if unique:
        try:
            # Optimistic: most batches hold no message stored before, so skip the lookup of
            # known message ids (one statement and a probe of the message-id index per
            # message); the insert's ON CONFLICT tells, and a batch that had some runs again
            # with the lookup. SQLite's insert relies on the lookup. Races past every retry
            # answer 503 (in_retrying_transaction).
            results.update(
                in_retrying_transaction(
                    lambda: work(look_up_known=connection.vendor != "postgresql")
                )
            )
        except _AlreadyStored:
            results.update(in_retrying_transaction(lambda: work(look_up_known=True)))
    return BatchResult(items=[results[index] for index in sorted(results)])


def _session_event(message: IncomingMessage, outcome: Resolved) -> SessionEvent:
    assert outcome.device is not None and outcome.profile is not None
    return SessionEvent(
        key=message.message_id,
        device_id=outcome.device.pk,
        profile_id=outcome.profile.pk,
        timestamp=message.identity.timestamp,
        type=message.type,
        name=message.name,
        sdk_session_id=sdk_session_id(message.context, message.properties),
        app_version=outcome.device.app_version,
    )


def events_known(*, app: App, message_ids: list[str]) -> set[str]:
    """The message ids the app already stored (one indexed lookup). Sessions and counters are
    only computed for the others; the insert's ON CONFLICT still guards against a concurrent
    request storing the same id in between."""
    if not message_ids:
        return set()
    return set(
        Event.objects.filter(app=app, message_id__in=message_ids).values_list(
            "message_id", flat=True
        )
    )


def events_insert(
    *,
    app: App,
    rows: list[tuple[IncomingMessage, Resolved]],
    sessions: dict[Any, Session],
    received_at: datetime,
    source: str,
) -> set[str]:
    """Insert the events, skipping message ids the app already has; returns the ids inserted."""
    if not rows:
        return set()
    insert = _events_insert_postgresql if connection.vendor == "postgresql" else _events_insert_orm
    return insert(app=app, rows=rows, sessions=sessions, received_at=received_at, source=source)


_INSERT_SQL = """
INSERT INTO events_event (
    app_id, profile_id, device_id, session_id, type, name, properties, context,
    timestamp, original_timestamp, received_at, message_id, source
)
SELECT %(app)s, profile_id, device_id, session_id, type, name, properties::jsonb,
       context::jsonb, ts, original_ts, %(received_at)s, message_id, %(source)s
FROM unnest(
    %(profile_ids)b::bigint[], %(device_ids)b::bigint[], %(session_ids)b::bigint[],
    %(types)b::text[], %(names)b::text[], %(properties)b::text[], %(contexts)b::text[],
    %(timestamps)b::timestamptz[], %(original_timestamps)b::timestamptz[],
    %(message_ids)b::text[]
) AS incoming(
    profile_id, device_id, session_id, type, name, properties, context, ts, original_ts,
    message_id
)
ON CONFLICT (app_id, message_id) DO NOTHING
RETURNING message_id
"""


def _events_insert_postgresql(
    *,
    app: App,
    rows: list[tuple[IncomingMessage, Resolved]],
    sessions: dict[Any, Session],
    received_at: datetime,
    source: str,
) -> set[str]:
    """One INSERT .. SELECT FROM unnest() with binary array parameters: about 5x Django's
    bulk_create here (docs/benchmarks.md), which sends every array element as text."""
    columns: dict[str, list[Any]] = {
        "profile_ids": [],
        "device_ids": [],
        "session_ids": [],
        "types": [],
        "names": [],
        "properties": [],
        "contexts": [],
        "timestamps": [],
        "original_timestamps": [],
        "message_ids": [],
    }
    for message, outcome in rows:
        assert outcome.profile is not None
        columns["profile_ids"].append(outcome.profile.pk)
        columns["device_ids"].append(outcome.device.pk if outcome.device is not None else None)
        session = sessions.get(message.message_id)
        columns["session_ids"].append(session.pk if session is not None else None)
        columns["types"].append(message.type)
        columns["names"].append(message.name)
        columns["properties"].append(json_text(message.properties))
        columns["contexts"].append(json_text(message.context))
        columns["timestamps"].append(message.identity.timestamp)
        columns["original_timestamps"].append(message.original_timestamp)
        columns["message_ids"].append(message.message_id)
    with binary_cursor() as cursor:
        cursor.execute(
            _INSERT_SQL,
            {"app": app.pk, "received_at": received_at, "source": source, **columns},
        )
        return {row[0] for row in cursor.fetchall()}


def _events_insert_orm(
    *,
    app: App,
    rows: list[tuple[IncomingMessage, Resolved]],
    sessions: dict[Any, Session],
    received_at: datetime,
    source: str,
) -> set[str]:
    """The embedded (SQLite) path: ``rows`` are already the ids :func:`events_known` did not
    find, and SQLite's IMMEDIATE transactions serialise writers, so nothing can race in."""
    fresh = rows
    Event.objects.bulk_create(
        Event(
            app=app,
            profile=outcome.profile,
            device=outcome.device,
            session=sessions.get(message.message_id),
            type=message.type,
            name=message.name,
            properties=message.properties,
            context=message.context,
            timestamp=message.identity.timestamp,
            original_timestamp=message.original_timestamp,
            received_at=received_at,
            message_id=message.message_id,
            source=source,
        )
        for message, outcome in fresh
    )
    return {message.message_id for message, _ in fresh}
