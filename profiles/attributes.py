"""Profile attribute updates: the operations, reserved-trait mapping, per-key set times, and
validation against the app's configured fields.

:func:`apply_ops` is a pure function on a profile's ``attributes``/``attribute_times`` dicts;
callers hold the row lock and save. Operations follow PostHog's ``$set``/``$set_once``/
``$unset`` and Mixpanel's ``$add``/``$append``/``$remove``.

:class:`AttributeWriter` is what identity resolution and the profile API call: one per batch,
it loads the app's configured fields once (one query), validates and coerces each operation
(a refused value is reported for that attribute alone and kept in quarantine), applies the
rest, and records the custom keys it saw as discovered fields (one statement per batch).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from profiles.models import App, Profile, ProfileField, QuarantinedAttribute
from pushapp.api import ApplicationError

logger = logging.getLogger(__name__)

Operation = Literal["set", "set_once", "unset", "increment", "append", "remove", "replace"]
OPERATIONS: tuple[Operation, ...] = ("set", "set_once", "unset", "increment", "append", "remove")
# "replace" is internal (PUT): unset every key but the ones listed in its value, set-once
# fields excepted. Clients cannot send it.

MAX_KEY_LENGTH = 128
MAX_STRING_BYTES = 8 * 1024
MAX_VALUE_DEPTH = 5
MAX_ATTRIBUTES = 500
MIN_INT, MAX_INT = -(2**63), 2**63 - 1

# Segment's reserved traits -> PushApp's standard profile fields.
RESERVED_TRAITS: dict[str, str] = {
    "firstName": "first_name",
    "lastName": "last_name",
    "createdAt": "created_at",
    "birthday": "birthday",
    "email": "email",
    "phone": "phone",
    "name": "name",
    "gender": "gender",
    "timezone": "timezone",
    "language": "language",
}
ADDRESS_TRAITS: dict[str, str] = {"city": "city", "country": "country"}
# Traits that are about identity, not the person: never stored as attributes.
IGNORED_TRAITS = {"userId", "user_id", "anonymousId", "id"}
# PostHog / Mixpanel style operation objects inside identify traits.
TRAIT_OPERATIONS: dict[str, Operation] = {
    "$set": "set",
    "$set_once": "set_once",
    "$unset": "unset",
    "$add": "increment",
    "$increment": "increment",
    "$append": "append",
    "$remove": "remove",
}


@dataclass(frozen=True)
class AttributeOp:
    op: Operation
    key: str
    value: Any = None


def _trait_ops(key: str, value: Any) -> list[AttributeOp]:
    if key in IGNORED_TRAITS:
        return []
    ops: list[AttributeOp] = []
    if key == "address" and isinstance(value, dict):
        for address_key, field_key in ADDRESS_TRAITS.items():
            if address_key in value:
                ops.append(AttributeOp("set", field_key, value[address_key]))
    ops.append(AttributeOp("set", RESERVED_TRAITS.get(key, key), value))
    return ops


def traits_to_ops(traits: dict[str, Any]) -> list[AttributeOp]:
    """Identify traits as ``set`` operations, reserved Segment traits mapped to field keys.

    ``address`` keeps its full object and also feeds ``city``/``country``. PostHog-style
    operation objects are understood too: ``{"$set": {...}, "$set_once": {...},
    "$unset": ["key", ...]}``, and Mixpanel's ``$add``/``$append``/``$remove`` (objects of
    key -> value). A malformed operation object is kept as a plain trait (nothing is lost).
    """
    ops: list[AttributeOp] = []
    for key, value in traits.items():
        operation = TRAIT_OPERATIONS.get(key)
        if operation is None:
            ops.extend(_trait_ops(key, value))
        elif operation == "unset" and isinstance(value, list | dict):
            ops.extend(AttributeOp("unset", RESERVED_TRAITS.get(str(k), str(k))) for k in value)
        elif isinstance(value, dict) and operation != "unset":
            for inner_key, inner_value in value.items():
                if operation == "set":
                    ops.extend(_trait_ops(inner_key, inner_value))
                elif inner_key not in IGNORED_TRAITS:
                    ops.append(
                        AttributeOp(
                            operation,
                            RESERVED_TRAITS.get(str(inner_key), str(inner_key)),
                            inner_value,
                        )
                    )
        else:
            ops.extend(_trait_ops(key, value))
    return ops


def ops_from_body(body: dict[str, Any]) -> list[AttributeOp]:
    """``attributes`` (a map, all set) then ``operations`` ([{op, key, value}]) in order, as the
    native identify and the profile API take them. A malformed body is a 400 for the request
    (nothing applied); values are checked later, per attribute."""
    raw_attributes = body.get("attributes")
    if raw_attributes is None:
        raw_attributes = {}
    if not isinstance(raw_attributes, dict):
        raise ApplicationError("attributes must be an object.", code="invalid_type")
    ops = [AttributeOp("set", key, value) for key, value in raw_attributes.items()]
    operations = body.get("operations")
    if operations is None:
        return ops
    if not isinstance(operations, list):
        raise ApplicationError("operations must be an array.", code="invalid_type")
    for position, item in enumerate(operations):
        if not isinstance(item, dict):
            raise ApplicationError(
                f"operations[{position}] must be an object.", code="invalid_type"
            )
        op, key = item.get("op"), item.get("key")
        if op not in OPERATIONS:
            raise ApplicationError(
                f"operations[{position}].op must be one of {', '.join(OPERATIONS)}.",
                code="invalid_operation",
            )
        if not isinstance(key, str) or not key:
            raise ApplicationError(
                f"operations[{position}].key must be a string.", code="invalid_operation"
            )
        if op == "increment" and (
            isinstance(item.get("value"), bool) or not isinstance(item.get("value"), int | float)
        ):
            raise ApplicationError(
                f"operations[{position}]: increment needs a number.", code="invalid_operation"
            )
        ops.append(AttributeOp(op, key, item.get("value")))
    return ops


def apply_ops(
    *,
    attributes: dict[str, Any],
    attribute_times: dict[str, str],
    ops: list[AttributeOp],
    at: datetime,
    set_once_keys: frozenset[str] = frozenset(),
) -> set[str]:
    """Apply ``ops`` in order at message time ``at``; returns the keys that changed.

    Last write wins by message time: a ``set`` older than the key's recorded set time is
    ignored, so a late offline message cannot overwrite a newer value. Keys configured as
    set-once keep their first value whatever the operation says.
    """
    stamp = at.isoformat()
    changed: set[str] = set()
    for op in ops:
        key = op.key
        previous_time = attribute_times.get(key)
        present = key in attributes
        if op.op == "set_once" or (op.op == "set" and key in set_once_keys):
            if present:
                continue
            attributes[key] = op.value
        elif op.op == "set":
            if previous_time is not None and previous_time > stamp and present:
                continue
            if present and attributes[key] == op.value:
                attribute_times[key] = max(previous_time or stamp, stamp)
                continue
            attributes[key] = op.value
        elif op.op == "unset":
            if not present:
                continue
            del attributes[key]
            attribute_times.pop(key, None)
            changed.add(key)
            continue
        elif op.op == "increment":
            current = attributes.get(key, 0)
            if isinstance(current, bool) or not isinstance(current, int | float):
                current = 0
            total = current + op.value
            if isinstance(total, float) and not math.isfinite(total):
                continue  # past the double range: PostgreSQL's JSONB cannot hold it
            attributes[key] = total
        elif op.op == "append":
            current_list = attributes.get(key)
            items = op.value if isinstance(op.value, list) else [op.value]
            base = list(current_list) if isinstance(current_list, list) else []
            attributes[key] = base + [item for item in items if item not in base]
        elif op.op == "remove":
            current_list = attributes.get(key)
            if not isinstance(current_list, list):
                continue
            items = op.value if isinstance(op.value, list) else [op.value]
            attributes[key] = [item for item in current_list if item not in items]
        attribute_times[key] = stamp
        changed.add(key)
    return changed


# -- validation: limits for every attribute, types for configured fields -----------------------


class AttributeRejected(Exception):
    """One attribute value refused: reported for that attribute alone and quarantined."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AttributeProblem:
    key: str
    code: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "code": self.code, "message": self.message}


def check_key(key: Any) -> None:
    if not isinstance(key, str) or not key.strip():
        raise AttributeRejected("invalid_key", "An attribute key must be a non-empty string.")
    if len(key) > MAX_KEY_LENGTH:
        raise AttributeRejected(
            "key_too_long", f"Attribute keys are at most {MAX_KEY_LENGTH} characters."
        )
    if "\x00" in key:
        raise AttributeRejected("invalid_key", "Attribute keys may not contain NUL characters.")


def check_limits(value: Any, *, depth: int = 0) -> None:
    """Every attribute value: strings up to 8 KB, nesting up to 5 levels, storable as JSONB."""
    if isinstance(value, str):
        if len(value) * 4 > MAX_STRING_BYTES and len(value.encode()) > MAX_STRING_BYTES:
            raise AttributeRejected(
                "value_too_long", f"Strings are at most {MAX_STRING_BYTES // 1024} KB (UTF-8)."
            )
        if "\x00" in value:
            raise AttributeRejected("invalid_value", "Strings may not contain NUL characters.")
        return
    if isinstance(value, dict | list):
        if depth >= MAX_VALUE_DEPTH:
            raise AttributeRejected(
                "too_deep", f"Attribute values are nested at most {MAX_VALUE_DEPTH} levels."
            )
        items = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict):
            for inner_key in value:
                if not isinstance(inner_key, str) or "\x00" in inner_key:
                    raise AttributeRejected(
                        "invalid_value", "Object keys must be strings without NUL characters."
                    )
        for item in items:
            check_limits(item, depth=depth + 1)
        return
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise AttributeRejected("invalid_value", "Numbers must be finite.")
    if isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
        raise AttributeRejected("invalid_value", "Integers must fit in 64 bits.")
    if not isinstance(value, int | float):
        raise AttributeRejected("invalid_value", f"Unsupported value type {type(value).__name__}.")


_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


_JSON_NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}


def _type_error(field_type: str, value: Any, hint: str = "") -> AttributeRejected:
    # The value itself is not repeated: it may be PII (it is kept in the quarantine).
    got = (
        "an object"
        if isinstance(value, dict)
        else "a list"
        if isinstance(value, list)
        else _JSON_NAMES.get(type(value), type(value).__name__)
    )
    if isinstance(value, str):
        got += " that is not one"
    article = "an" if field_type[0] in "aeiou" else "a"
    return AttributeRejected("invalid_value", f"Expected {article} {field_type}{hint}; got {got}.")


def _as_number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise _type_error("number", value)
    if isinstance(value, int | float):
        check_limits(value)
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        number: int | float = (
            float(text) if any(c in text for c in ".eE") else int(text)  # "42" -> 42
        )
        try:
            check_limits(number)
        except AttributeRejected:
            raise _type_error("number", value, " (out of range)") from None
        return number
    raise _type_error("number", value)


def _as_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _type_error("boolean", value, " (true or false)")


def _as_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        check_limits(value)
        return str(value)  # 5551234 -> "5551234": nothing lost
    raise _type_error("string", value)


def parse_datetime(text: str) -> datetime | None:
    """An ISO 8601 date or date-time (naive means UTC), or None."""
    candidate = text.strip()
    if not 10 <= len(candidate) <= 40:
        return None
    if candidate[-1] in "zZ":
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_datetime(moment: datetime) -> str:
    """The one stored form: UTC with ``Z``, microseconds only when there are some
    (``2024-05-17T09:30:00Z``, ``2024-05-17T09:30:00.250000Z``)."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


def datetime_sort_key(stored: str) -> str:
    """What the date-time expression index holds for a stored value (fixed width, so text
    order is time order): ``2024-05-17T09:30:00.000000``."""
    return stored.rstrip("Z").ljust(26, "0") if "." in stored else stored.rstrip("Z") + ".000000"


def _as_datetime(value: Any) -> str:
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None:
            try:
                return format_datetime(parsed)
            except (OverflowError, ValueError):
                pass
    raise _type_error("date-time", value, " (an ISO 8601 string such as 2024-05-17T09:30:00Z)")


def _as_date(value: Any) -> str:
    if isinstance(value, str):
        text = value.strip()
        if _DATE.fullmatch(text):
            try:
                return date.fromisoformat(text).isoformat()
            except ValueError:
                pass
        parsed = parse_datetime(text)
        if parsed is not None and parsed.time() == datetime.min.time():
            return parsed.date().isoformat()  # midnight: only the date was meant
    raise _type_error("date", value, " (an ISO 8601 date such as 1990-05-17)")


def _as_string_list(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    try:
        return [_as_string(item) for item in items]
    except AttributeRejected:
        raise _type_error("list of strings", value) from None


def _as_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise _type_error("object", value)


COERCERS: dict[str, Any] = {
    "string": _as_string,
    "number": _as_number,
    "boolean": _as_boolean,
    "datetime": _as_datetime,
    "date": _as_date,
    "string_list": _as_string_list,
    "object": _as_object,
}


def coerce_value(field_type: str, value: Any) -> Any:
    """``value`` as a ``field_type`` value when that loses nothing ("42" -> 42, ISO 8601
    strings normalised), else :class:`AttributeRejected`. ``null`` is kept for every type."""
    check_limits(value)
    if value is None:
        return None
    coerced = COERCERS[field_type](value)
    check_limits(coerced)
    return coerced


def json_type(value: Any) -> str:
    """A discovered key's sample type, in the field types' vocabulary where it fits."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        if _DATE.fullmatch(value):
            return "date"
        if "T" in value and parse_datetime(value) is not None:
            return "datetime"
        return "string"
    if isinstance(value, list):
        return "string_list" if all(isinstance(item, str) for item in value) else "list"
    return "object"


def storable(value: Any) -> Any:
    """A refused value made safe to keep in JSONB (NUL, infinities and huge ints as text)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and not MIN_INT <= value <= MAX_INT:
        return str(value)
    return value


# -- the per-batch writer ------------------------------------------------------------------------


@dataclass
class AttributeWriter:
    """Validates and applies attribute operations for one batch of one app.

    Statements: the configured fields are loaded on first use (one query, or none when the
    caller preloads them, as identity resolution does with its suppression lookup); refused values are
    inserted with one bulk statement by :meth:`save`; discovered keys are upserted with one
    statement after commit (a catalogue: its counters must not hold row locks for the length
    of an ingestion transaction, and a failure there loses no data).
    """

    app: App
    _fields: dict[str, ProfileField] | None = None
    quarantine: list[QuarantinedAttribute] = field(default_factory=list)
    discovered: dict[str, list[Any]] = field(default_factory=dict)  # key -> [type, count]

    def preload(self, fields: dict[str, ProfileField]) -> None:
        """Fields already read by the caller (identity loads them with the suppressions)."""
        self._fields = fields

    @property
    def fields(self) -> dict[str, ProfileField]:
        if self._fields is None:
            self._fields = {f.key: f for f in ProfileField.objects.filter(app=self.app)}
        return self._fields

    def apply(
        self,
        *,
        profile: Profile,
        ops: Iterable[AttributeOp],
        at: datetime,
        source: str,
    ) -> tuple[set[str], list[AttributeProblem]]:
        """Apply ``ops`` in order to ``profile`` (locked by the caller). Returns the keys that
        changed and the refused attributes (each also quarantined)."""
        fields = self.fields
        set_once = frozenset(key for key, f in fields.items() if f.set_once)
        changed: set[str] = set()
        problems: list[AttributeProblem] = []
        attributes, times = profile.attributes, profile.attribute_times
        for op in ops:
            if op.op == "replace":
                keep = set(op.value or ())
                drop = [key for key in attributes if key not in keep and key not in set_once]
                changed |= apply_ops(
                    attributes=attributes,
                    attribute_times=times,
                    ops=[AttributeOp("unset", key) for key in drop],
                    at=at,
                )
                continue
            try:
                prepared = self._prepare(op, fields.get(op.key), attributes)
            except AttributeRejected as refused:
                problems.append(self._refuse(profile, op, refused, source))
                continue
            was_present = op.key in attributes
            keys = apply_ops(
                attributes=attributes,
                attribute_times=times,
                ops=[prepared],
                at=at,
                set_once_keys=set_once,
            )
            if not was_present and op.key in attributes and len(attributes) > MAX_ATTRIBUTES:
                del attributes[op.key]
                times.pop(op.key, None)
                too_many = AttributeRejected(
                    "too_many_attributes",
                    f"A profile holds at most {MAX_ATTRIBUTES} attributes; unset some first.",
                )
                problems.append(self._refuse(profile, op, too_many, source))
                continue
            changed |= keys
            if op.key in keys and op.key not in fields and op.key in attributes:
                entry = self.discovered.setdefault(op.key, [json_type(attributes[op.key]), 0])
                entry[1] += 1
        return changed, problems

    def _prepare(
        self, op: AttributeOp, configured: ProfileField | None, attributes: dict[str, Any]
    ) -> AttributeOp:
        check_key(op.key)
        if op.op == "unset":
            return op
        field_type = configured.field_type if configured is not None else None
        if op.op in ("set", "set_once"):
            value = coerce_value(field_type, op.value) if field_type else op.value
            check_limits(value)
            return AttributeOp(op.op, op.key, value)
        if op.op == "increment":
            if field_type not in (None, "number"):
                raise AttributeRejected(
                    "invalid_operation",
                    f"increment needs a number field; {op.key} is a {field_type}.",
                )
            amount = _as_number(op.value)
            current = attributes.get(op.key, 0)
            if isinstance(current, bool) or not isinstance(current, int | float):
                current = 0
            try:
                check_limits(current + amount)
            except AttributeRejected:
                raise AttributeRejected(
                    "invalid_value", f"{op.key} + {op.value} is out of the number range."
                ) from None
            return AttributeOp("increment", op.key, amount)
        # append / remove: lists
        if field_type not in (None, "string_list"):
            raise AttributeRejected(
                "invalid_operation", f"{op.op} needs a list field; {op.key} is a {field_type}."
            )
        value = _as_string_list(op.value) if field_type else op.value
        check_limits(value)
        if op.op == "append":
            current = attributes.get(op.key)
            merged = (list(current) if isinstance(current, list) else []) + (
                value if isinstance(value, list) else [value]
            )
            check_limits(merged)
            if len(orjson.dumps(merged)) > 64 * MAX_STRING_BYTES:
                raise AttributeRejected("value_too_long", f"The list {op.key} is too long.")
        return AttributeOp(op.op, op.key, value)

    def _refuse(
        self, profile: Profile, op: AttributeOp, refused: AttributeRejected, source: str
    ) -> AttributeProblem:
        key = op.key if isinstance(op.key, str) else str(op.key)
        self.quarantine.append(
            QuarantinedAttribute(
                app=self.app,
                profile=profile,
                key=storable(key),
                operation=op.op,
                value=storable(op.value),
                code=refused.code,
                error=refused.message,
                source=source,
                received_at=timezone.now(),
            )
        )
        return AttributeProblem(key=key[:200], code=refused.code, message=refused.message)

    def save(self) -> None:
        """Insert the quarantined values (profiles have their pks by now) and queue the
        discovered keys' upsert for after commit."""
        if self.quarantine:
            for row in self.quarantine:
                row.profile_id = row.profile.pk if row.profile is not None else None
            QuarantinedAttribute.objects.bulk_create(self.quarantine)
            self.quarantine = []
        if self.discovered:
            counts = {key: (kind, count) for key, (kind, count) in self.discovered.items()}
            app_id = self.app.pk
            self.discovered = {}
            transaction.on_commit(lambda: discovered_fields_record(app_id=app_id, counts=counts))


_DISCOVERED_SQL_POSTGRESQL = """
INSERT INTO profiles_discoveredfield
    (app_id, key, sample_type, first_seen_at, last_seen_at, seen_count)
SELECT %s, key, sample_type, %s, %s, seen_count
FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS seen(key, sample_type, seen_count)
WHERE NOT EXISTS (  -- configured meanwhile (promoted while this batch ran)
    SELECT 1 FROM profiles_profilefield f WHERE f.app_id = %s AND f.key = seen.key
)
ORDER BY key
ON CONFLICT (app_id, key) DO UPDATE SET
    last_seen_at = GREATEST(profiles_discoveredfield.last_seen_at, EXCLUDED.last_seen_at),
    seen_count = profiles_discoveredfield.seen_count + EXCLUDED.seen_count
"""

_DISCOVERED_SQL_OTHER = """
INSERT INTO profiles_discoveredfield
    (app_id, key, sample_type, first_seen_at, last_seen_at, seen_count)
VALUES {rows}
ON CONFLICT (app_id, key) DO UPDATE SET
    last_seen_at = MAX(profiles_discoveredfield.last_seen_at, excluded.last_seen_at),
    seen_count = profiles_discoveredfield.seen_count + excluded.seen_count
"""


def discovered_fields_record(*, app_id: int, counts: dict[str, tuple[str, int]]) -> None:
    """Upsert discovered keys with their sample type and how often they were set: one
    statement (keys in one order, so concurrent upserts cannot deadlock). Never raises: the
    catalogue is advisory, the attributes themselves are already committed."""
    if not counts:
        return
    now = timezone.now()
    keys = sorted(counts)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    _DISCOVERED_SQL_POSTGRESQL,
                    [
                        app_id,
                        now,
                        now,
                        keys,
                        [counts[key][0] for key in keys],
                        [counts[key][1] for key in keys],
                        app_id,
                    ],
                )
                return
            for start in range(0, len(keys), 100):
                chunk = keys[start : start + 100]
                params: list[Any] = []
                for key in chunk:
                    params += [app_id, key, counts[key][0], now, now, counts[key][1]]
                rows = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
                cursor.execute(_DISCOVERED_SQL_OTHER.format(rows=rows), params)
    except DatabaseError:
        logger.warning("could not record discovered fields of app %s", app_id, exc_info=True)


# -- indexed filtering (PostgreSQL): one expression index per configured key and kind ----------

# Number fields: a numeric expression; date fields: their text ("YYYY-MM-DD") in the "C"
# collation; date-time fields: their text padded to a fixed width (microseconds, no "Z"), so
# text order is time order.
INDEXED_FIELD_TYPES = {"number": "num", "date": "date", "datetime": "dt"}
# Created by the migration for every app's standard fields, never dropped.
STANDARD_INDEXED_FIELDS = (("created_at", "datetime"), ("birthday", "date"))


def sql_string(key: str) -> str:
    """``key`` as a SQL string literal (keys are free text; DDL cannot take parameters)."""
    return "'" + key.replace("'", "''") + "'"


def attribute_index_name(key: str, field_type: str) -> str:
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:24]
    return f"profattr_{INDEXED_FIELD_TYPES[field_type]}_{digest}"


def attribute_index_expression(key: str, field_type: str, *, column: str = "attributes") -> str:
    """The SQL expression an index on ``key`` covers; filters must use exactly this one."""
    literal = sql_string(key)
    kind = INDEXED_FIELD_TYPES[field_type]
    if kind == "num":
        return (
            f"(CASE WHEN jsonb_typeof({column} -> {literal}) = 'number' "
            f"THEN ({column} ->> {literal})::numeric END)"
        )
    if kind == "dt":
        return f"(rpad(rtrim({column} ->> {literal}, 'Z'), 26, '.000000') COLLATE \"C\")"
    return f'(({column} ->> {literal}) COLLATE "C")'


def attribute_index_sql(key: str, field_type: str, *, concurrently: bool) -> str:
    # Not partial: the planner takes an index expression's statistics (ANALYZE) only from a
    # non-partial index, and without them a range is guessed at a third of the table.
    how = "CONCURRENTLY " if concurrently else ""
    return (
        f"CREATE INDEX {how}IF NOT EXISTS {attribute_index_name(key, field_type)} "
        f"ON profiles_profile (app_id, {attribute_index_expression(key, field_type)})"
    )
