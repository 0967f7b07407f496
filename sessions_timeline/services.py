"""Writes on sessions and the daily activity read model: assignment at ingestion, moves for
merges and their undo, and rebuilds for re-sync."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, timedelta

from django.db import connection
from django.db.models import Count, F
from django.db.models.functions import Coalesce, TruncDate

from profiles.models import App
from pushapp.db import binary_cursor, in_list, list_param, rows_insert, rows_update, select_rows
from sessions_timeline.models import ProfileDailyActivity, Session
from sessions_timeline.sessionize import SessionEvent, Sessionizer, sdk_session_id

REBUILD_CHUNK = 5000


def sessions_assign(
    *,
    app: App,
    events: list[SessionEvent],
    same_person: Callable[[int, int], bool] | None = None,
) -> tuple[dict[object, Session], Counter[int]]:
    """Sessions for a batch of device events: one SELECT of the candidate sessions of the
    batch's devices, one INSERT of the new ones, one UPDATE of the changed ones. The caller
    holds the devices' row locks (identity resolution took them), so concurrent batches of
    one device cannot both extend a session. Returns each event's session by key and the
    number of new sessions per profile."""
    if not events:
        return {}, Counter()
    timeout = timedelta(seconds=app.session_timeout_seconds)
    device_ids = {event.device_id for event in events}
    earliest = min(event.timestamp for event in events) - timeout
    latest = max(event.timestamp for event in events) + timeout
    sdk_ids = {event.sdk_session_id for event in events if event.sdk_session_id}
    # Raw SQL (pushapp.db.select_rows says why): it runs on every ingestion request.
    adapt = connection.ops.adapt_datetimefield_value
    window = "(last_event_at >= %s AND started_at <= %s)"
    params = [list_param(device_ids), adapt(earliest), adapt(latest)]
    if sdk_ids:
        window = f"({window} OR {in_list('sdk_session_id', 'text')})"
        params.append(list_param(sdk_ids))
    existing = select_rows(Session, f"{in_list('device_id', 'bigint')} AND {window}", params)
    sessionizer = Sessionizer(
        app_id=app.pk, timeout=timeout, existing=existing, same_person=same_person
    )
    assigned = sessionizer.assign(events)
    if sessionizer.new:
        rows_insert(Session, sessionizer.new)
    if sessionizer.changed:
        rows_update(
            Session,
            list(sessionizer.changed.values()),
            [
                "started_at",
                "last_event_at",
                "ended_at",
                "event_count",
                "screen_count",
                "app_version",
            ],
        )
    return assigned, Counter(session.profile_id for session in sessionizer.new)


# Adds the events of an incoming (profile, day) row to the one already there.
_DAILY_UPSERT = (
    f"ON CONFLICT (profile_id, day) DO UPDATE SET "
    f"events = {ProfileDailyActivity._meta.db_table}.events + EXCLUDED.events"
)


def daily_activity_add(*, counts: Counter[tuple[int, date]]) -> None:
    """Add event counts per (profile, day): one upsert statement."""
    if not counts:
        return
    rows = [(profile_id, day, n) for (profile_id, day), n in counts.items()]
    table = ProfileDailyActivity._meta.db_table
    if connection.vendor == "postgresql":
        with binary_cursor() as cursor:  # bound server-side: prepared (pushapp.db.fetch_all)
            cursor.execute(
                f"INSERT INTO {table} (profile_id, day, events) "
                "SELECT * FROM unnest(%s::bigint[], %s::date[], %s::int[]) " + _DAILY_UPSERT,
                [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
            )
        return
    with connection.cursor() as cursor:
        placeholders = ", ".join(["(%s, %s, %s)"] * len(rows))
        cursor.execute(
            f"INSERT INTO {table} (profile_id, day, events) VALUES {placeholders} " + _DAILY_UPSERT,
            [value for row in rows for value in row],
        )


def daily_activity_rebuild(*, profile_ids: Iterable[int]) -> None:
    """Recompute the daily counts of ``profile_ids`` from their events."""
    from events.models import Event

    ids = list(profile_ids)
    ProfileDailyActivity.objects.filter(profile_id__in=ids).delete()
    per_day = (
        Event.objects.filter(profile_id__in=ids)
        .annotate(day=TruncDate("timestamp"))
        .values("profile_id", "day")
        .annotate(n=Count("id"))
        .order_by()
    )
    ProfileDailyActivity.objects.bulk_create(
        ProfileDailyActivity(profile_id=row["profile_id"], day=row["day"], events=row["n"])
        for row in per_day
    )


def sessions_reassign(*, source_id: int, target_id: int) -> int:
    """Move every session of profile ``source_id`` to ``target_id`` (sessions are few next to
    events, so one statement), and fold the source's daily activity into the target's.
    Returns how many sessions moved."""
    moved = Session.objects.filter(profile_id=source_id).update(
        profile_id=target_id, original_profile_id=Coalesce(F("original_profile_id"), source_id)
    )
    # The source's days added to the target's in the database (no rows through Python),
    # then deleted: two statements on PostgreSQL and SQLite alike.
    table = ProfileDailyActivity._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (profile_id, day, events) "
            f"SELECT %s, day, events FROM {table} WHERE profile_id = %s " + _DAILY_UPSERT,
            [target_id, source_id],
        )
    ProfileDailyActivity.objects.filter(profile_id=source_id).delete()
    return moved


def sessions_restore(*, source_id: int, target_id: int, origin_ids: list[int]) -> int:
    """Undo of a merge: sessions first recorded on ``origin_ids`` go back to ``source_id``;
    both profiles' daily activity is recomputed from their events."""
    Session.objects.filter(profile_id=target_id, original_profile_id=source_id).update(
        profile_id=source_id, original_profile=None
    )
    Session.objects.filter(profile_id=target_id, original_profile_id__in=origin_ids).update(
        profile_id=source_id
    )
    daily_activity_rebuild(profile_ids=[source_id, target_id])
    return Session.objects.filter(profile_id=source_id).count()


def sessions_rebuild(*, app: App, profile_id: int) -> int:
    """Re-sync: drop a profile's sessions and sessionize its device events again from scratch,
    in time order. Returns the number of sessions."""
    from events.models import Event

    Event.objects.filter(profile_id=profile_id).exclude(session=None).update(session=None)
    Session.objects.filter(profile_id=profile_id).delete()
    sessionizer = Sessionizer(
        app_id=app.pk, timeout=timedelta(seconds=app.session_timeout_seconds), existing=[]
    )
    assignments: list[tuple[int, Session]] = []
    events = (
        Event.objects.filter(profile_id=profile_id, device__isnull=False)
        .order_by("device_id", "timestamp", "id")
        .values_list("id", "device_id", "timestamp", "type", "name", "context", "properties")
    )
    for event_id, device_id, timestamp, kind, name, context, properties in events.iterator(
        chunk_size=REBUILD_CHUNK
    ):
        context = context or {}
        app_info = context.get("app")
        app_info = app_info if isinstance(app_info, dict) else {}
        session_event = SessionEvent(
            key=event_id,
            device_id=device_id,
            profile_id=profile_id,
            timestamp=timestamp,
            type=kind,
            name=name,
            sdk_session_id=sdk_session_id(context, properties or {}),
            app_version=str(app_info.get("version") or "")[:64],
        )
        for key, session in sessionizer.assign([session_event]).items():
            assignments.append((key, session))
    Session.objects.bulk_create(sessionizer.new, batch_size=1000)
    for start in range(0, len(assignments), REBUILD_CHUNK):
        _events_set_sessions(assignments[start : start + REBUILD_CHUNK])
    return len(sessionizer.new)


def _events_set_sessions(assignments: list[tuple[int, Session]]) -> None:
    """Point events at their sessions: one statement per chunk on PostgreSQL."""
    from events.models import Event

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE events_event SET session_id = v.session_id "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(event_id, session_id) "
                "WHERE events_event.id = v.event_id",
                [[event_id for event_id, _ in assignments], [s.pk for _, s in assignments]],
            )
        return
    by_session: dict[int, list[int]] = {}
    for event_id, session in assignments:
        by_session.setdefault(session.pk, []).append(event_id)
    for session_pk, event_ids in by_session.items():
        Event.objects.filter(pk__in=event_ids).update(session_id=session_pk)
