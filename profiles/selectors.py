"""Reads on profiles: every lookup is scoped to one app.

``events`` and ``sessions_timeline`` models are imported inside the functions that read them
(``profiles`` does not depend on them at module level).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTransform
from django.http import Http404
from django.utils import timezone

from profiles.attributes import (
    INDEXED_FIELD_TYPES,
    RESERVED_TRAITS,
    AttributeRejected,
    attribute_index_expression,
    coerce_value,
    datetime_sort_key,
)
from profiles.models import (
    App,
    Device,
    DeviceBinding,
    Profile,
    ProfileAlias,
    ProfileField,
    ProfileMerge,
    QuarantinedAttribute,
    Suppression,
    suppression_hash,
)
from pushapp.api import ApplicationError
from pushapp.db import fetch_all, in_list, list_param

if TYPE_CHECKING:
    from events.models import Event


def profile_get_by_user_id(*, app: App, user_id: str) -> Profile:
    """The live profile of ``user_id`` (a user id or an alias; tombstones followed)."""
    if "\x00" in user_id or len(user_id) > 255:  # no such id can be stored
        raise Http404("No profile with this user id.")
    profile = Profile.objects.filter(app=app, user_id=user_id).first()
    if profile is None:
        alias = (
            ProfileAlias.objects.filter(app=app, alias=user_id).select_related("profile").first()
        )
        profile = alias.profile if alias else None
    if profile is None:
        raise Http404("No profile with this user id.")
    return profile_live(profile)


def profile_get_by_public_id(*, app: App, public_id: str) -> Profile:
    try:
        parsed = uuid.UUID(public_id)
    except ValueError:
        raise Http404("Not a profile id.") from None
    profile = Profile.objects.filter(app=app, public_id=parsed).first()
    if profile is None:
        raise Http404("No profile with this id.")
    return profile_live(profile)


def profile_live(profile: Profile) -> Profile:
    """Rule 8: follow ``merged_into`` to the live profile."""
    for _ in range(100):
        if profile.merged_into_id is None:
            return profile
        profile = Profile.objects.get(pk=profile.merged_into_id)
    raise RuntimeError(f"merge chain from profile {profile.pk} does not end")


def person_profile_ids(*, profile: Profile) -> list[int]:
    """``profile`` and every tombstone that resolves to it (merge chains of any length)."""
    ids = [profile.pk]
    frontier = [profile.pk]
    while frontier:
        frontier = list(
            Profile.objects.filter(merged_into_id__in=frontier)
            .exclude(pk__in=ids)
            .values_list("pk", flat=True)
        )
        ids.extend(frontier)
    return ids


# -- suppression (erased ids) ------------------------------------------------------------------


def batch_lookups(
    *, app: App, device_keys: Iterable[str], user_keys: Iterable[str]
) -> tuple[set[str], set[str], dict[str, ProfileField]]:
    """What identity resolution needs beyond ids, in ONE query for the whole batch: which
    device keys and which user keys are suppressed (user ids and aliases share one namespace),
    and the app's configured fields (to validate attributes)."""
    by_hash: dict[str, list[tuple[str, str]]] = {}
    for key in device_keys:
        by_hash.setdefault(suppression_hash(key), []).append(("device", key))
    for key in user_keys:
        by_hash.setdefault(suppression_hash(key), []).append(("user", key))
    # Raw SQL (pushapp.db.select_rows says why): it runs on every ingestion request.
    sql = (
        f"SELECT 'field', key, field_type, set_once FROM {ProfileField._meta.db_table} "
        "WHERE app_id = %s"
    )
    params: list[Any] = [app.pk]
    if by_hash:
        sql += (
            f" UNION ALL SELECT 'suppression', kind, value_hash, FALSE "
            f"FROM {Suppression._meta.db_table} "
            f"WHERE app_id = %s AND {in_list('value_hash', 'text')}"
        )
        params += [app.pk, list_param(by_hash)]
    rows = fetch_all(sql, params)
    devices: set[str] = set()
    users: set[str] = set()
    fields: dict[str, ProfileField] = {}
    for source, first, second, set_once in rows:
        if source == "field":
            fields[first] = ProfileField(
                app=app, key=first, field_type=second, set_once=bool(set_once)
            )
            continue
        for side, key in by_hash.get(second, []):
            if side == "device" and first == Suppression.Kind.DEVICE_ID:
                devices.add(key)
            elif side == "user" and first != Suppression.Kind.DEVICE_ID:
                users.add(key)
    return devices, users, fields


def suppression_exists(*, app: App, kind: str, value: str) -> bool:
    kinds = [kind] if kind == Suppression.Kind.DEVICE_ID else ["user_id", "alias"]
    return Suppression.objects.filter(
        app=app, kind__in=kinds, value_hash=suppression_hash(value)
    ).exists()


# -- display and PII masking -------------------------------------------------------------------


def mask_value(value: Any) -> str:
    """A PII value for someone without the permission to see it: ``a***@example.com`` for an
    email address, ``•••`` for anything else (nothing for an empty value)."""
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, str) and "@" in value.strip("@"):
        local, _, domain = value.rpartition("@")
        return f"{local[:1]}***@{domain}"
    return "•••"


def value_display(value: Any) -> str:
    """An attribute value as text for a page."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def pii_keys(*, app: App | int) -> frozenset[str]:
    app_id = app if isinstance(app, int) else app.pk
    return frozenset(
        ProfileField.objects.filter(app_id=app_id, pii=True).values_list("key", flat=True)
    )


def profile_attributes_for_display(
    *, profile: Profile, can_see_pii: bool
) -> tuple[list[tuple[ProfileField, str]], list[tuple[str, str]]]:
    """``(configured, custom)`` for a profile page: every configured field of the app in
    display order with its value as text ("" when unset), then the custom attributes sorted
    by key. PII fields' values are masked (:func:`mask_value`) unless ``can_see_pii``."""
    attributes = profile.attributes or {}
    fields = list(ProfileField.objects.filter(app_id=profile.app_id))
    configured: list[tuple[ProfileField, str]] = []
    for profile_field in fields:
        value = attributes.get(profile_field.key)
        shown = value_display(value)
        if profile_field.pii and not can_see_pii:
            shown = mask_value(shown)
        configured.append((profile_field, shown))
    known = {profile_field.key for profile_field in fields}
    custom = [
        (key, value_display(attributes[key])) for key in sorted(attributes) if key not in known
    ]
    return configured, custom


def mask_attributes(attributes: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    return {key: mask_value(value) if key in keys else value for key, value in attributes.items()}


# -- a profile's events: keyset pages, never OFFSET ----------------------------------------------

MAX_EVENTS_PAGE = 200


@dataclass(frozen=True)
class EventsPage:
    events: list[Event]
    next_cursor: str | None
    device_ids: dict[int, str]


def _cursor_encode(event: Event) -> str:
    raw = orjson.dumps([event.timestamp.isoformat(), event.pk])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, event_id = orjson.loads(raw)
        parsed = datetime.fromisoformat(moment)
        if not isinstance(event_id, int) or parsed.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ApplicationError(
            "cursor is not a cursor this API returned.", code="invalid_cursor"
        ) from None
    return parsed, event_id


def _open_merge_sources(profile: Profile) -> list[int]:
    """Tombstones of ``profile`` whose events may not have moved yet (merge pending/running)."""
    return list(
        Profile.objects.filter(
            merged_into=profile,
            merges_out__status__in=[ProfileMerge.Status.PENDING, ProfileMerge.Status.RUNNING],
        )
        .values_list("pk", flat=True)
        .distinct()
    )


def profile_events_page(
    *,
    profile: Profile,
    cursor: str | None = None,
    limit: int = 50,
    name: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    profile_ids: list[int] | None = None,
) -> EventsPage:
    """One page of the profile's events, newest first, keyset-paginated on (timestamp desc,
    id desc) along the timeline index. Events still on a tombstone whose merge is running
    are included. ``start`` is inclusive, ``end`` exclusive."""
    from events.models import Event

    ids = profile_ids or [profile.pk, *_open_merge_sources(profile)]
    events = (
        Event.objects.filter(profile_id__in=ids)
        if len(ids) > 1
        else Event.objects.filter(profile_id=ids[0])
    )
    if name:
        events = events.filter(name=name)
    if start is not None:
        events = events.filter(timestamp__gte=start)
    if end is not None:
        events = events.filter(timestamp__lt=end)
    if cursor:
        moment, event_id = _cursor_decode(cursor)
        # A seek on the index (timestamp <= t), then only rows of that very timestamp filtered.
        events = events.filter(timestamp__lte=moment).exclude(timestamp=moment, pk__gte=event_id)
    rows = list(events.order_by("-timestamp", "-id")[: limit + 1])
    page, more = rows[:limit], len(rows) > limit
    device_pks = {event.device_id for event in page if event.device_id is not None}
    device_ids = (
        dict(Device.objects.filter(pk__in=device_pks).values_list("pk", "device_id"))
        if device_pks
        else {}
    )
    return EventsPage(
        events=page,
        next_cursor=_cursor_encode(page[-1]) if more and page else None,
        device_ids=device_ids,
    )


def event_json(event: Event, device_ids: dict[int, str]) -> dict[str, Any]:
    return {
        "message_id": event.message_id,
        "type": event.type,
        "name": event.name,
        "properties": event.properties,
        "context": event.context,
        "timestamp": event.timestamp,
        "original_timestamp": event.original_timestamp,
        "received_at": event.received_at,
        "source": event.source,
        "device_id": device_ids.get(event.device_id) if event.device_id else None,
    }


# -- export: everything PushApp holds on one person ----------------------------------------------

EXPORT_CHUNK = 1000


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def mask_event_properties(properties: Any, keys: frozenset[str]) -> Any:
    """Identify traits are kept on the event: mask the ones that feed a PII field."""
    if not isinstance(properties, dict) or not keys:
        return properties
    masked: dict[str, Any] = {}
    for key, value in properties.items():
        if key in keys or RESERVED_TRAITS.get(key) in keys:
            masked[key] = mask_value(value)
        elif isinstance(value, dict) and key.startswith("$"):
            masked[key] = mask_event_properties(value, keys)
        else:
            masked[key] = value
    return masked


def profile_export_document(*, profile: Profile, can_see_pii: bool = True) -> dict[str, Any]:
    """Everything but the events (see :func:`profile_export_stream`)."""
    from sessions_timeline.models import ProfileDailyActivity, Session

    ids = person_profile_ids(profile=profile)
    masked = frozenset() if can_see_pii else pii_keys(app=profile.app_id)
    public_ids = dict(Profile.objects.filter(pk__in=ids).values_list("pk", "public_id"))
    tombstones = list(Profile.objects.filter(pk__in=ids).exclude(pk=profile.pk).order_by("pk"))
    devices = list(Device.objects.filter(profile_id__in=ids).order_by("pk"))
    device_ids = {device.pk: device.device_id for device in devices}
    bindings = list(DeviceBinding.objects.filter(profile_id__in=ids).order_by("bound_at", "pk"))
    missing = {b.device_id for b in bindings if b.device_id not in device_ids}
    if missing:
        device_ids.update(Device.objects.filter(pk__in=missing).values_list("pk", "device_id"))

    def public(profile_id: int | None) -> str | None:
        if profile_id is None:
            return None
        return str(public_ids[profile_id]) if profile_id in public_ids else None

    def snapshot(data: dict[str, Any]) -> dict[str, Any]:
        if not masked or not isinstance(data, dict):
            return data
        result = dict(data)
        if isinstance(result.get("attributes"), dict):
            result["attributes"] = mask_attributes(result["attributes"], masked)
        return result

    def prior(data: dict[str, Any]) -> dict[str, Any]:
        if not masked or not isinstance(data, dict):
            return data
        states = data.get("attributes") or {}
        return {
            **data,
            "attributes": {
                key: {**state, "value": mask_value(state.get("value"))} if key in masked else state
                for key, state in states.items()
                if isinstance(state, dict)
            },
        }

    merges = ProfileMerge.objects.filter(Q(source_id__in=ids) | Q(target_id__in=ids)).order_by(
        "created_at", "pk"
    )
    return {
        "exported_at": timezone.now().isoformat(),
        "pii_masked": bool(masked),
        "profile": {
            "profile_id": str(profile.public_id),
            "user_id": profile.user_id,
            "kind": profile.kind,
            "first_seen_at": _iso(profile.first_seen_at),
            "last_seen_at": _iso(profile.last_seen_at),
            "event_count": profile.event_count,
            "session_count": profile.session_count,
            "created_at": _iso(profile.created_at),
            "updated_at": _iso(profile.updated_at),
        },
        "attributes": mask_attributes(profile.attributes, masked),
        "attribute_times": profile.attribute_times,
        "merged_profiles": [
            {
                "profile_id": str(tombstone.public_id),
                "user_id": tombstone.user_id,
                "kind": tombstone.kind,
                "attributes": mask_attributes(tombstone.attributes, masked),
                "attribute_times": tombstone.attribute_times,
                "created_at": _iso(tombstone.created_at),
            }
            for tombstone in tombstones
        ],
        "aliases": [
            {"alias": alias.alias, "created_at": _iso(alias.created_at)}
            for alias in ProfileAlias.objects.filter(profile_id__in=ids).order_by("pk")
        ],
        "devices": [
            {
                "device_id": device.device_id,
                "platform": device.platform,
                "os_name": device.os_name,
                "os_version": device.os_version,
                "model": device.model,
                "manufacturer": device.manufacturer,
                "app_version": device.app_version,
                "app_build": device.app_build,
                "sdk_name": device.sdk_name,
                "sdk_version": device.sdk_version,
                "locale": device.locale,
                "timezone": device.timezone,
                "push_token": device.push_token,
                "push_opt_in": device.push_opt_in,
                "attributes": device.attributes,
                "first_seen_at": _iso(device.first_seen_at),
                "last_seen_at": _iso(device.last_seen_at),
            }
            for device in devices
        ],
        "bindings": [
            {
                "device_id": device_ids.get(binding.device_id),
                "profile_id": public(binding.profile_id),
                "bound_at": _iso(binding.bound_at),
                "reason": binding.reason,
            }
            for binding in bindings
        ],
        "sessions": [
            {
                "device_id": device_ids.get(session.device_id),
                "sdk_session_id": session.sdk_session_id,
                "started_at": _iso(session.started_at),
                "ended_at": _iso(session.ended_at),
                "last_event_at": _iso(session.last_event_at),
                "event_count": session.event_count,
                "screen_count": session.screen_count,
                "app_version": session.app_version,
            }
            for session in Session.objects.filter(profile_id__in=ids).order_by("started_at")
        ],
        "daily_activity": [
            {"day": day.isoformat(), "events": count}
            for day, count in ProfileDailyActivity.objects.filter(profile_id__in=ids)
            .order_by("day")
            .values_list("day", "events")
        ],
        "merges": [
            {
                "source": public(merge.source_id),
                "target": public(merge.target_id),
                "status": merge.status,
                "reason": merge.reason,
                "forced": merge.forced,
                "created_at": _iso(merge.created_at),
                "finished_at": _iso(merge.finished_at),
                "undone_at": _iso(merge.undone_at),
                "source_snapshot": snapshot(merge.source_snapshot),
                "target_prior": prior(merge.target_prior),
            }
            for merge in merges
        ],
        "quarantine": [
            {
                "key": row.key,
                "operation": row.operation,
                "value": mask_value(row.value) if row.key in masked else row.value,
                "code": row.code,
                "error": row.error,
                "source": row.source,
                "received_at": _iso(row.received_at),
            }
            for row in QuarantinedAttribute.objects.filter(profile_id__in=ids).order_by(
                "received_at", "pk"
            )
        ],
    }


def profile_export_stream(*, profile: Profile, can_see_pii: bool = True) -> Iterator[bytes]:
    """The export as JSON bytes: the document, then ``"events"`` streamed page by page along
    the timeline index (newest first), so a profile with millions of events is never held in
    memory."""
    document = profile_export_document(profile=profile, can_see_pii=can_see_pii)
    masked = frozenset() if can_see_pii else pii_keys(app=profile.app_id)
    ids = person_profile_ids(profile=profile)
    head = orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS, default=str)
    yield head[:-1] + b',"events":['
    first = True
    for profile_id in ids:
        cursor: str | None = None
        while True:
            page = profile_events_page(
                profile=profile, cursor=cursor, limit=EXPORT_CHUNK, profile_ids=[profile_id]
            )
            chunk = []
            for event in page.events:
                row = event_json(event, page.device_ids)
                if masked and event.type == "identify":
                    row["properties"] = mask_event_properties(row["properties"], masked)
                chunk.append(orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS, default=str))
            if chunk:
                yield (b"" if first else b",") + b",".join(chunk)
                first = False
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    yield b"]}"


# -- filtering profiles by attribute (what cohorts build on) -------------------------------------

FILTER_OPS = ("eq", "lt", "lte", "gt", "gte", "exists")
_SQL_OPS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def profiles_filter(*, app: App, field_key: str, op: str, value: Any = None) -> QuerySet[Profile]:
    """Live profiles of ``app`` whose attribute ``field_key`` matches ``op`` ``value``.

    - ``eq``: JSON containment (``attributes @> {key: value}``), served by the GIN
      (jsonb_path_ops) index; on a list-of-strings field it means "the list holds value";
    - ``lt``/``lte``/``gt``/``gte``: configured number, date and date-time fields only,
      served by the field's expression index (profiles/services.py: attribute_indexes_sync);
    - ``exists``: the key is set.

    ``value`` is coerced like a stored value of the field ("42" -> 42, dates normalised).
    """
    if op not in FILTER_OPS:
        raise ApplicationError(f"op must be one of {', '.join(FILTER_OPS)}.", code="invalid_filter")
    configured = ProfileField.objects.filter(app=app, key=field_key).first()
    field_type = configured.field_type if configured is not None else None
    profiles = Profile.objects.filter(app=app, merged_into__isnull=True)
    if op == "exists":
        return profiles.filter(attributes__has_key=field_key)
    try:
        if field_type == "string_list" and op == "eq":
            coerced: Any = coerce_value("string", value)
        else:
            coerced = coerce_value(field_type, value) if field_type else value
    except AttributeRejected as refused:
        raise ApplicationError(refused.message, code="invalid_filter") from None
    if op == "eq":
        match = [coerced] if field_type == "string_list" else coerced
        if connection.vendor == "postgresql":
            return profiles.filter(attributes__contains={field_key: match})
        return _filter_without_json_operators(profiles, field_key, "eq", match)
    if field_type not in INDEXED_FIELD_TYPES:
        raise ApplicationError(
            f"{op} needs a configured number, date or date-time field; {field_key!r} is "
            f"{'a ' + field_type if field_type else 'not configured'}.",
            code="invalid_filter",
        )
    if coerced is None:
        raise ApplicationError("A range filter needs a value.", code="invalid_filter")
    if connection.vendor != "postgresql":
        return _filter_without_json_operators(profiles, field_key, op, coerced)
    # Exactly the indexed expression, the key as a literal (not a parameter) so the planner
    # can match it ("%" doubled: the statement also carries the bound as a parameter). A
    # profile without the key has NULL there and never matches.
    column = f"{Profile._meta.db_table}.attributes"
    expression = attribute_index_expression(field_key, field_type, column=column)
    cast = "::numeric" if field_type == "number" else ""
    condition = f"{expression.replace('%', '%%')} {_SQL_OPS[op]} %s{cast}"
    bound = datetime_sort_key(coerced) if field_type == "datetime" else str(coerced)
    return profiles.filter(
        RawSQL(condition, [bound], output_field=BooleanField())  # type: ignore[arg-type]
    )


def _filter_without_json_operators(
    profiles: QuerySet[Profile], field_key: str, op: str, value: Any
) -> QuerySet[Profile]:
    """The embedded (SQLite) mode: no JSON containment and no indexes; a key transform, and
    list membership checked in Python (development data sizes only)."""
    if isinstance(value, list):
        wanted = value[0]
        ids = [
            profile_id
            for profile_id, attributes in profiles.filter(
                attributes__has_key=field_key
            ).values_list("pk", "attributes")
            if isinstance(attributes.get(field_key), list) and wanted in attributes[field_key]
        ]
        return profiles.filter(pk__in=ids)
    lookup = "exact" if op == "eq" else op
    return profiles.alias(_value=KeyTransform(field_key, "attributes")).filter(
        **{f"_value__{lookup}": value}
    )
