"""Profile attribute updates: the operations, reserved-trait mapping and per-key set times.

Pure functions on a profile's ``attributes``/``attribute_times`` dicts; callers hold the row
lock and save. Operations follow PostHog's ``$set``/``$set_once``/``$unset`` and Mixpanel's
``$add``/``$append``/``$remove``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Operation = Literal["set", "set_once", "unset", "increment", "append", "remove"]
OPERATIONS: tuple[Operation, ...] = ("set", "set_once", "unset", "increment", "append", "remove")

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


@dataclass(frozen=True)
class AttributeOp:
    op: Operation
    key: str
    value: Any = None


def traits_to_ops(traits: dict[str, Any]) -> list[AttributeOp]:
    """Identify traits as ``set`` operations, reserved Segment traits mapped to field keys.

    ``address`` keeps its full object and also feeds ``city``/``country``. A trait key starting
    with ``$set_once`` etc. is not special here: the native API carries explicit operations.
    """
    ops: list[AttributeOp] = []
    for key, value in traits.items():
        if key in IGNORED_TRAITS:
            continue
        if key == "address" and isinstance(value, dict):
            for address_key, field_key in ADDRESS_TRAITS.items():
                if address_key in value:
                    ops.append(AttributeOp("set", field_key, value[address_key]))
        ops.append(AttributeOp("set", RESERVED_TRAITS.get(key, key), value))
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
