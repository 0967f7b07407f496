"""Writes on apps, memberships, profile fields, profiles through the server API, erasure and
suppression (identity itself lives in profiles/identity.py)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Q
from django.http import Http404
from django.utils import timezone

from profiles.attributes import (
    INDEXED_FIELD_TYPES,
    STANDARD_INDEXED_FIELDS,
    AttributeOp,
    AttributeWriter,
    attribute_index_name,
    attribute_index_sql,
)
from profiles.authentication import SERVER_KEY_PREFIX, WRITE_KEY_PREFIX
from profiles.models import (
    App,
    Device,
    DeviceBinding,
    DiscoveredField,
    Profile,
    ProfileAlias,
    ProfileErasure,
    ProfileField,
    ProfileMerge,
    QuarantinedAttribute,
    StaffAction,
    Suppression,
    hash_server_key,
    suppression_hash,
)
from profiles.selectors import person_profile_ids, profile_live
from pushapp.api import ApplicationError

logger = logging.getLogger(__name__)

STANDARD_FIELDS: list[tuple[str, str, str, bool]] = [
    # key, label, type, pii
    ("email", "Email", ProfileField.Type.STRING, True),
    ("phone", "Phone", ProfileField.Type.STRING, True),
    ("first_name", "First name", ProfileField.Type.STRING, True),
    ("last_name", "Last name", ProfileField.Type.STRING, True),
    ("name", "Name", ProfileField.Type.STRING, True),
    ("birthday", "Birthday", ProfileField.Type.DATE, True),
    ("gender", "Gender", ProfileField.Type.STRING, False),
    ("city", "City", ProfileField.Type.STRING, False),
    ("country", "Country", ProfileField.Type.STRING, False),
    ("language", "Language", ProfileField.Type.STRING, False),
    ("timezone", "Time zone", ProfileField.Type.STRING, False),
    ("created_at", "Signed up at", ProfileField.Type.DATETIME, False),
]
SEARCHABLE_STANDARD_FIELDS = {"email", "phone"}
SET_ONCE_STANDARD_FIELDS = {"created_at"}


@dataclass(frozen=True)
class AppKeys:
    """Keys as shown once: the server key is never stored in clear."""

    write_key: str
    server_key: str


def _new_write_key() -> str:
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(24)


def _new_server_key() -> str:
    return SERVER_KEY_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def app_create(*, name: str, session_timeout_seconds: int = 30 * 60) -> tuple[App, AppKeys]:
    """Create an app with fresh keys and the standard profile fields."""
    server_key = _new_server_key()
    app = App.objects.create(
        name=name,
        write_key=_new_write_key(),
        server_key_hash=hash_server_key(server_key),
        server_key_prefix=server_key[:10],
        session_timeout_seconds=session_timeout_seconds,
    )
    ProfileField.objects.bulk_create(
        ProfileField(
            app=app,
            key=key,
            label=label,
            field_type=field_type,
            pii=pii,
            searchable=key in SEARCHABLE_STANDARD_FIELDS,
            set_once=key in SET_ONCE_STANDARD_FIELDS,
            display_order=position,
        )
        for position, (key, label, field_type, pii) in enumerate(STANDARD_FIELDS)
    )
    return app, AppKeys(write_key=app.write_key, server_key=server_key)


@transaction.atomic
def app_rotate_keys(*, app: App, write: bool = True, server: bool = True) -> AppKeys:
    """Replace the app's keys; the old ones stop working at once in this process and within
    ``APP_KEY_CACHE_SECONDS`` in the others (profiles.authentication). Returns the new keys
    (the server key only here: it is stored hashed). An unrotated key is returned as ""."""
    server_key = ""
    if write:
        app.write_key = _new_write_key()
    if server:
        server_key = _new_server_key()
        app.server_key_hash = hash_server_key(server_key)
        app.server_key_prefix = server_key[:10]
    app.keys_rotated_at = timezone.now()
    app.save(update_fields=["write_key", "server_key_hash", "server_key_prefix", "keys_rotated_at"])
    return AppKeys(write_key=app.write_key if write else "", server_key=server_key)


# -- profiles through the server API ----------------------------------------------------------


@dataclass
class ProfileWrite:
    profile: Profile
    created: bool = False
    attribute_errors: list[dict[str, str]] = field(default_factory=list)


def _with_replace(ops: list[AttributeOp], replace: bool) -> list[AttributeOp]:
    """PUT: every attribute the body does not name is unset first (set-once fields kept)."""
    if not replace:
        return ops
    named = sorted({op.key for op in ops if op.op != "unset"})
    return [AttributeOp("replace", "", named), *ops]


def profile_upsert(
    *, app: App, user_id: str, ops: list[AttributeOp], replace: bool = False
) -> ProfileWrite:
    """Create or update the identified profile of ``user_id`` with attribute operations.

    Goes through identity resolution like any message by user id only (rule 7): an alias or a
    merged profile's user id reaches the live profile, a new user id creates an identified
    profile, placeholder ids are refused, and an erased (suppressed) id is refused with 409
    ``suppressed``. ``replace`` (PUT) unsets every attribute the body does not name, set-once
    fields excepted. Refused values are reported per attribute and quarantined.
    """
    from profiles.identity import (
        IdentityRequest,
        in_retrying_transaction,
        resolve_batch,
    )

    if "\x00" in user_id:
        raise ApplicationError("A user id may not contain NUL characters.", code="invalid_user_id")
    request = IdentityRequest(
        index=0,
        timestamp=timezone.now(),
        user_id=user_id,
        attribute_ops=_with_replace(ops, replace),
        attribute_source="profile_api",
    )

    def work() -> tuple[Profile, bool]:
        resolver, (resolved,) = resolve_batch(app=app, requests=[request])
        if resolved.error is not None:
            raise resolved.error
        assert resolved.profile is not None
        resolver.save_activity([])
        return resolved.profile, any(p is resolved.profile for p in resolver.new_profiles)

    try:
        profile, created = in_retrying_transaction(work)
    except ApplicationError as error:
        if error.code == "suppressed":
            raise ApplicationError(error.message, code="suppressed", status_code=409) from None
        raise
    return ProfileWrite(profile=profile, created=created, attribute_errors=request.attribute_errors)


def profile_attributes_update(
    *, profile: Profile, ops: list[AttributeOp], replace: bool = False
) -> ProfileWrite:
    """Apply attribute operations to an existing profile (guests, addressed by public id).
    Nothing is created here, so identity resolution has nothing to decide."""
    with transaction.atomic():
        live = Profile.objects.select_for_update().get(pk=profile.pk)
        for _ in range(100):
            if live.merged_into_id is None:
                break
            live = Profile.objects.select_for_update().get(pk=live.merged_into_id)
        writer = AttributeWriter(app=live.app)
        changed, problems = writer.apply(
            profile=live, ops=_with_replace(ops, replace), at=timezone.now(), source="profile_api"
        )
        if changed:
            live.save(update_fields=["attributes", "attribute_times", "updated_at"])
        writer.save()
    return ProfileWrite(profile=live, attribute_errors=[p.as_json() for p in problems])


# -- erasure and suppression -------------------------------------------------------------------

ERASE_EVENTS_BATCH = 5000


def _events_delete(profile_ids: list[int]) -> int:
    """Delete the events of ``profile_ids`` in bounded statements (inside the caller's
    transaction: the erasure commits whole or not at all)."""
    from events.models import Event

    total = 0
    while True:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "DELETE FROM events_event WHERE id IN (SELECT id FROM events_event "
                    "WHERE profile_id = ANY(%s) LIMIT %s)",
                    [profile_ids, ERASE_EVENTS_BATCH],
                )
                deleted = cursor.rowcount
        else:
            batch = list(
                Event.objects.filter(profile_id__in=profile_ids).values_list("pk", flat=True)[
                    :ERASE_EVENTS_BATCH
                ]
            )
            deleted = Event.objects.filter(pk__in=batch)._raw_delete(Event.objects.db)
        total += deleted
        if deleted < ERASE_EVENTS_BATCH:
            return total


def profile_erase(
    *, profile: Profile, via: str = ProfileErasure.Via.API, requested_by: Any = None
) -> ProfileErasure:
    """Erase a person, in one transaction: the live profile and its tombstones, their events,
    sessions, devices, bindings, aliases, merge records (with their snapshots), quarantined
    values and daily activity. Their user ids, aliases and device ids are then suppressed:
    data naming them is refused until the suppression is lifted (:func:`suppression_lift`).

    A device another person also used (a shared phone: its binding history names a profile
    outside this person) is not deleted: it keeps the other person's history, is re-bound to
    a fresh guest, loses its push token, and its id is not suppressed.
    Returns the audit row (counts only).
    """
    from sessions_timeline.models import Session

    with transaction.atomic():
        live = profile_live(profile)
        # Lock like identity does (devices, then profiles, each by id), then make sure no
        # tombstone or device joined the person while we waited.
        for _ in range(5):
            ids = person_profile_ids(profile=live)
            devices = list(
                Device.objects.filter(profile_id__in=ids).order_by("pk").select_for_update()
            )
            locked = list(Profile.objects.filter(pk__in=ids).order_by("pk").select_for_update())
            if not any(p.pk == live.pk for p in locked):
                raise Http404("This profile was erased or merged meanwhile.")
            if person_profile_ids(profile=live) == ids and {
                d.pk for d in Device.objects.filter(profile_id__in=ids)
            } == {d.pk for d in devices}:
                break
        else:
            raise ApplicationError(
                "The profile kept changing; retry.", code="retry_later", status_code=503
            )
        live = next(p for p in locked if p.pk == live.pk)
        if live.merged_into_id is not None:
            raise Http404("This profile was merged meanwhile; erase the profile it became.")
        user_ids = sorted({p.user_id for p in locked if p.user_id})
        aliases = sorted(
            set(ProfileAlias.objects.filter(profile_id__in=ids).values_list("alias", flat=True))
        )
        shared_ids = set(
            DeviceBinding.objects.filter(device__in=devices)
            .exclude(profile_id__in=ids)
            .values_list("device_id", flat=True)
        )
        erased_devices = [d for d in devices if d.pk not in shared_ids]
        shared_devices = [d for d in devices if d.pk in shared_ids]

        counts: dict[str, int] = {"profiles": len(ids)}
        counts["events"] = _events_delete(ids)
        counts["sessions"] = Session.objects.filter(profile_id__in=ids).delete()[0]
        counts["quarantine"] = QuarantinedAttribute.objects.filter(profile_id__in=ids).delete()[0]
        counts["aliases"] = ProfileAlias.objects.filter(profile_id__in=ids).delete()[0]
        DeviceBinding.objects.filter(Q(profile_id__in=ids) | Q(device__in=erased_devices)).delete()
        counts["merges"] = ProfileMerge.objects.filter(
            Q(source_id__in=ids) | Q(target_id__in=ids)
        ).delete()[0]
        counts["devices"] = len(erased_devices)
        Device.objects.filter(pk__in=[d.pk for d in erased_devices]).delete()
        now = timezone.now()
        for device in shared_devices:
            guest = Profile.objects.create(app_id=live.app_id, kind=Profile.Kind.GUEST)
            Device.objects.filter(pk=device.pk).update(
                profile=guest, binding_changed_at=now, push_token=None, updated_at=now
            )
            DeviceBinding.objects.create(
                app_id=live.app_id,
                device_id=device.pk,
                profile=guest,
                bound_at=now,
                reason=DeviceBinding.Reason.LOGOUT,
            )
        counts["shared_devices_kept"] = len(shared_devices)
        Profile.objects.filter(pk__in=ids).delete()
        erasure = ProfileErasure.objects.create(
            app_id=live.app_id,
            public_id=live.public_id,
            via=via,
            requested_by=requested_by,
            counts=counts,
        )
        suppressions = [
            *((Suppression.Kind.USER_ID, value) for value in user_ids),
            *((Suppression.Kind.ALIAS, value) for value in aliases),
            *((Suppression.Kind.DEVICE_ID, d.device_id) for d in erased_devices),
        ]
        Suppression.objects.bulk_create(
            [
                Suppression(
                    app_id=live.app_id,
                    kind=kind,
                    value_hash=suppression_hash(value),
                    erasure=erasure,
                )
                for kind, value in suppressions
            ],
            ignore_conflicts=True,
        )
        erasure.counts = {**counts, "suppressed_ids": len(suppressions)}
        erasure.save(update_fields=["counts"])
    return erasure


def suppression_lift(*, app: App, kind: str, value: str) -> int:
    """Let data naming ``value`` in again (a user id also lifts it as an alias, the ids share
    one namespace). Returns how many suppressions were removed."""
    kinds = (
        [Suppression.Kind.DEVICE_ID]
        if kind == Suppression.Kind.DEVICE_ID
        else [Suppression.Kind.USER_ID, Suppression.Kind.ALIAS]
    )
    deleted, _ = Suppression.objects.filter(
        app=app, kind__in=kinds, value_hash=suppression_hash(value)
    ).delete()
    return deleted


def suppressions_lift(*, suppression_ids: list[int]) -> int:
    deleted, _ = Suppression.objects.filter(pk__in=suppression_ids).delete()
    return deleted


# -- profile fields: configuration, promotion, indexes -----------------------------------------


def _indexes_sync_on_commit(field_type: str) -> None:
    if field_type in INDEXED_FIELD_TYPES and connection.vendor == "postgresql":
        from profiles.tasks import attribute_indexes_sync_task

        def enqueue() -> None:
            try:
                attribute_indexes_sync_task.delay()
            except Exception:  # the broker is down: the next field change or deploy syncs
                logger.warning("could not enqueue the attribute index sync", exc_info=True)

        transaction.on_commit(enqueue)


def profile_field_save(*, profile_field: ProfileField) -> ProfileField:
    """Create or change a configured field; a number, date or date-time field gets its
    expression index (built concurrently by a task after commit)."""
    with transaction.atomic():
        if profile_field.pk is None and not profile_field.display_order:
            last = ProfileField.objects.filter(app_id=profile_field.app_id).aggregate(
                last=Max("display_order")
            )["last"]
            profile_field.display_order = 0 if last is None else last + 1
        profile_field.save()
        DiscoveredField.objects.filter(app_id=profile_field.app_id, key=profile_field.key).delete()
        _indexes_sync_on_commit(profile_field.field_type)
    return profile_field


def profile_field_delete(*, profile_field: ProfileField) -> None:
    """Stop configuring a field: its values stay on the profiles as custom attributes."""
    with transaction.atomic():
        field_type = profile_field.field_type
        profile_field.delete()
        _indexes_sync_on_commit(field_type)


INFERRED_TYPES = {
    "string": ProfileField.Type.STRING,
    "number": ProfileField.Type.NUMBER,
    "boolean": ProfileField.Type.BOOLEAN,
    "datetime": ProfileField.Type.DATETIME,
    "date": ProfileField.Type.DATE,
    "string_list": ProfileField.Type.STRING_LIST,
    "list": ProfileField.Type.STRING_LIST,
    "object": ProfileField.Type.OBJECT,
}


def discovered_field_promote(
    *,
    discovered: DiscoveredField,
    field_type: str | None = None,
    label: str | None = None,
    pii: bool = False,
    set_once: bool = False,
) -> ProfileField:
    """Make a discovered key a configured field (type inferred from the sample when not
    given). Values already stored are left as they are; new ones are validated."""
    with transaction.atomic():
        existing = ProfileField.objects.filter(app_id=discovered.app_id, key=discovered.key).first()
        if existing is not None:
            discovered.delete()
            return existing
        chosen = field_type or INFERRED_TYPES.get(discovered.sample_type, ProfileField.Type.STRING)
        if chosen not in ProfileField.Type.values:
            raise ApplicationError(f"Unknown field type {chosen!r}.", code="invalid_type")
        return profile_field_save(
            profile_field=ProfileField(
                app_id=discovered.app_id,
                key=discovered.key,
                label=label or discovered.key.replace("_", " ").strip().capitalize()[:200],
                field_type=chosen,
                pii=pii,
                set_once=set_once,
            )
        )


def attribute_indexes_sync(*, concurrently: bool | None = None) -> dict[str, list[str]]:
    """Make the expression indexes match the configured number, date and date-time fields of
    every app (one index per key and kind, shared by the apps that configure it): create the
    missing ones, rebuild invalid ones (a failed concurrent build), drop the unused ones.
    PostgreSQL only. Concurrent builds need autocommit; inside a transaction (tests, the
    migration) the plain form is used."""
    result: dict[str, list[str]] = {"created": [], "dropped": []}
    if connection.vendor != "postgresql":
        return result
    if concurrently is None:
        concurrently = not connection.in_atomic_block
    wanted = {
        attribute_index_name(key, kind): (key, kind)
        for key, kind in [
            *STANDARD_INDEXED_FIELDS,
            *ProfileField.objects.filter(field_type__in=list(INDEXED_FIELD_TYPES))
            .values_list("key", "field_type")
            .distinct(),
        ]
    }
    how = "CONCURRENTLY " if concurrently else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE t.relname = 'profiles_profile' AND c.relname LIKE %s",
            ["profattr\\_%"],
        )
        existing = dict(cursor.fetchall())
        for name, valid in existing.items():
            if name not in wanted or not valid:
                cursor.execute(f"DROP INDEX {how}IF EXISTS {name}")
                if name not in wanted:
                    result["dropped"].append(name)
        for name, (key, kind) in wanted.items():
            if existing.get(name):
                continue
            cursor.execute(attribute_index_sql(key, kind, concurrently=concurrently))
            result["created"].append(name)
    return result


def staff_action_record(
    *,
    request: Any,
    action: str,
    objects: list[Any],
    result: str,
    message: str = "",
    details: dict[str, Any] | None = None,
) -> StaffAction:
    """One row of the staff audit log: who (the request's user), what, which objects, the
    result. Called by every admin action, in the transaction of its effect when it has one."""
    user = request.user if getattr(request.user, "is_authenticated", False) else None
    first = objects[0] if objects else None
    app_id = None
    if first is not None:
        app_id = first.pk if isinstance(first, App) else getattr(first, "app_id", None)
    return StaffAction.objects.create(
        user=user,
        username=getattr(user, "username", "") or "",
        app_id=app_id,
        action=action,
        object_type=type(first).__name__.lower() if first is not None else "",
        object_ids=[obj.pk for obj in objects],
        object_repr=", ".join(str(obj) for obj in objects)[:300],
        result=result,
        message=message[:2000],
        details=details or {},
    )
