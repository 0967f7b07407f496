"""Identity: which device, which profile. The one entry point for DESIGN.md section 4.

Ingestion, the native API and the admin call :func:`resolve_batch` (messages) and the merge
services below; nothing else decides which profile a message belongs to.

A batch is resolved set-based: a constant number of statements loads (and row-locks) every
device, alias and profile the batch names, the rules run in memory in array order, and the
outcome is written back with bulk statements. The caller wraps it all in one transaction and
retries on :data:`RETRYABLE_ERRORS` (two requests creating the same user id or device at once:
the loser's unique-constraint error makes it re-run and find the winner's row).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Count, F, Max, Min, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from profiles.attributes import AttributeOp, AttributeWriter
from profiles.models import (
    App,
    BackgroundJob,
    Device,
    DeviceBinding,
    Profile,
    ProfileAlias,
    ProfileMerge,
)
from profiles.selectors import batch_lookups, profile_live
from pushapp.api import ApplicationError
from pushapp.db import fetch_all, in_list, list_param, rows_insert, rows_update, select_rows

logger = logging.getLogger(__name__)

# Unique-constraint races and deadlocks are resolved by re-running the whole request.
RETRYABLE_ERRORS = (IntegrityError, OperationalError)
# Row locks are FOR NO KEY UPDATE: writers of profiles and devices exclude each other, while
# inserts of events (whose foreign key takes KEY SHARE on the profile) are not blocked.

PLACEHOLDER_USER_IDS = frozenset(
    {"", "null", "undefined", "none", "nil", "0", "-1", "anonymous", "guest", "[object object]"}
)
MAX_ID_LENGTH = 255

DEVICE_FIELDS = (
    "platform",
    "os_name",
    "os_version",
    "model",
    "manufacturer",
    "app_version",
    "app_build",
    "sdk_name",
    "sdk_version",
    "locale",
    "timezone",
    "push_opt_in",
)

DEVICE_FIELD_LENGTHS: dict[str, int] = {
    field.name: field.max_length
    for field in Device._meta.concrete_fields
    if field.name in DEVICE_FIELDS and field.max_length
}

Action = Literal["message", "alias", "logout"]


class IdentityError(ApplicationError):
    """A message whose ids cannot be applied (placeholder user id, refused alias, ...)."""


def user_id_problem(user_id: str) -> str | None:
    """Why ``user_id`` cannot name a person, or None when it can."""
    if len(user_id) > MAX_ID_LENGTH:
        return f"user id is longer than {MAX_ID_LENGTH} characters"
    if user_id.strip().lower() in PLACEHOLDER_USER_IDS:
        return f"{user_id!r} is a placeholder, not a user id"
    return None


@dataclass
class IdentityRequest:
    """The identity part of one message."""

    index: int
    timestamp: datetime
    device_key: str | None = None
    user_id: str | None = None
    previous_id: str | None = None
    action: Action = "message"
    device_fields: dict[str, Any] = field(default_factory=dict)
    device_attributes: dict[str, Any] = field(default_factory=dict)
    push_token: str | None = None
    attribute_ops: list[AttributeOp] = field(default_factory=list)
    attribute_source: str = "ingestion"
    # Filled in by resolution: the attributes refused for this message (also quarantined).
    attribute_errors: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Resolved:
    profile: Profile | None = None
    device: Device | None = None
    error: ApplicationError | None = None


@dataclass
class _Binding:
    bound_at: datetime
    profile: Profile


class BatchResolver:
    """Resolves one batch of identity requests for one app (use :func:`resolve_batch`)."""

    def __init__(self, *, app: App, requests: list[IdentityRequest]) -> None:
        self.app = app
        self.requests = requests
        self.devices: dict[str, Device] = {}
        self.profiles: dict[int, Profile] = {}
        self.by_user_id: dict[str, Profile] = {}
        self.aliases: dict[str, Profile] = {}
        self.history: dict[str, list[_Binding]] = {}
        self.new_profiles: list[Profile] = []
        self.new_devices: list[Device] = []
        self.new_bindings: list[tuple[Device, _Binding, str]] = []
        self.new_aliases: list[tuple[str, Profile]] = []
        self.merges: list[ProfileMerge] = []
        self.dirty_profiles: dict[int, Profile] = {}
        self.dirty_devices: dict[int, Device] = {}
        self.tokens_claimed: dict[str, Device] = {}
        # Merge targets decided in this batch, by source object (a new source has no pk yet).
        self.merge_targets: dict[int, Profile] = {}
        self.attribute_writer = AttributeWriter(app=app)
        self.suppressed_devices: set[str] = set()
        self.suppressed_users: set[str] = set()

    # -- loading: a constant number of statements -------------------------------------------

    def load(self) -> None:
        device_keys: set[str] = set()
        user_keys: set[str] = set()
        for request in self.requests:
            if request.device_key is not None:
                device_keys.add(request.device_key)
            if request.user_id is not None:
                user_keys.add(request.user_id)
            if request.previous_id is not None:
                device_keys.add(request.previous_id)
                user_keys.add(request.previous_id)
        # Raw SQL (pushapp.db.select_rows): these run on every request, and the ORM's
        # compiling of them cost more than the lookups themselves.
        devices = (
            select_rows(
                Device,
                f"app_id = %s AND {in_list('device_id', 'text')}",
                [self.app.pk, list_param(device_keys)],
                lock=True,
            )
            if device_keys
            else []
        )
        self.devices = {device.device_id: device for device in devices}
        alias_rows = (
            fetch_all(
                "SELECT alias, profile_id FROM profiles_profilealias "
                f"WHERE app_id = %s AND {in_list('alias', 'text')}",
                [self.app.pk, list_param(user_keys)],
            )
            if user_keys
            else []
        )
        self._load_profiles(
            {device.profile_id for device in devices if device.profile_id}
            | {profile_id for _, profile_id in alias_rows},
            user_keys,
        )
        for alias, profile_id in alias_rows:
            self.aliases[alias] = self.profiles[profile_id]
        for device in devices:
            device.profile = self.profiles[device.profile_id]
        self._load_history()
        # Erased people's ids and the configured fields, in one query, after the locks (an
        # erasure that committed while this batch waited on them is seen).
        self.suppressed_devices, self.suppressed_users, fields = batch_lookups(
            app=self.app, device_keys=device_keys, user_keys=user_keys
        )
        self.attribute_writer.preload(fields)

    def _load_profiles(self, ids: set[int], user_ids: set[str] | None = None) -> None:
        """Lock the profiles with these ids or user ids and the live ends of their merge
        chains."""
        # One index-driven statement (a BitmapOr of the pk and (app, user_id) indexes); folding
        # the merge targets into it as subqueries made PostgreSQL scan the whole table.
        loaded = self._lock_profiles(ids, user_ids or set())
        # Tombstones among them: one more statement for their targets (merges keep chains one
        # hop long), rarely another for a chain not yet shortened.
        missing = self._unloaded_targets(loaded)
        while missing:
            more = self._lock_profiles(missing, set())
            missing = self._unloaded_targets(more)

    def _lock_profiles(self, ids: set[int], user_ids: set[str]) -> list[Profile]:
        if not ids and not user_ids:
            return []
        wanted, params = [in_list("id", "bigint")], [list_param(ids)]
        if user_ids:
            wanted.append(in_list("user_id", "text"))
            params.append(list_param(user_ids))
        loaded = select_rows(
            Profile, f"app_id = %s AND ({' OR '.join(wanted)})", [self.app.pk, *params], lock=True
        )
        for profile in loaded:
            self._remember(profile)
        return loaded

    def _unloaded_targets(self, profiles: list[Profile]) -> set[int]:
        return {
            p.merged_into_id
            for p in profiles
            if p.merged_into_id is not None and p.merged_into_id not in self.profiles
        }

    def _remember(self, profile: Profile) -> None:
        self.profiles[profile.pk] = profile
        if profile.user_id is not None:
            self.by_user_id[profile.user_id] = profile

    def _load_history(self) -> None:
        """Binding history, only for devices that have messages older than their binding."""
        late = {
            request.device_key
            for request in self.requests
            if request.device_key in self.devices
            and request.timestamp < self.devices[request.device_key].binding_changed_at
        }
        if not late:
            return
        rows = list(
            DeviceBinding.objects.filter(device__in=[self.devices[key] for key in late])
            .order_by("device_id", "bound_at", "pk")
            .values_list("device_id", "bound_at", "profile_id")
        )
        unknown = {profile_id for _, _, profile_id in rows if profile_id not in self.profiles}
        if unknown:
            self._load_profiles(unknown)
        key_of = {self.devices[key].pk: key for key in late}
        for device_pk, bound_at, profile_id in rows:
            self.history.setdefault(key_of[device_pk], []).append(
                _Binding(bound_at=bound_at, profile=self.profiles[profile_id])
            )

    # -- the rules, in memory, in array order ------------------------------------------------

    def resolve(self) -> list[Resolved]:
        results: list[Resolved] = []
        for request in self.requests:
            try:
                results.append(self._resolve_one(request))
            except IdentityError as error:
                results.append(Resolved(error=error))
        return results

    def _resolve_one(self, request: IdentityRequest) -> Resolved:
        for user_key in (request.user_id, request.previous_id):
            if user_key is not None and (problem := user_id_problem(user_key)):
                raise IdentityError(problem, code="invalid_user_id")
        if (self.suppressed_devices or self.suppressed_users) and self._is_suppressed(request):
            raise IdentityError(
                "This id belongs to an erased person; data for it is refused until the "
                "suppression is lifted.",
                code="suppressed",
            )
        if request.action == "alias":
            return self._alias(request)
        at = request.timestamp
        device: Device | None = None
        profile: Profile
        if request.device_key is not None:
            device = self.devices.get(request.device_key)
            if device is None:
                # Rule 1; a first message that already carries a user id binds straight to
                # that user's profile (the guest it would create would be merged at once).
                owner = (
                    self._user_profile(request.user_id, create=True) if request.user_id else None
                )
                device = self._new_device(request.device_key, owner or self._new_profile(None), at)
                profile = self.live(device.profile)
            elif request.action == "logout":
                profile = self._logout(device, at)
            elif request.user_id is not None:
                profile = self._link(device, request.user_id, at)
            else:
                profile = self._profile_at(device, at)
            self._update_device(device, request)
        elif request.user_id is not None:
            profile = self._user_profile(request.user_id, create=True)  # rule 7
        else:
            raise IdentityError("A message needs a device id or a user id.", code="missing_ids")
        if request.attribute_ops:
            self._apply_attributes(profile, request.attribute_ops, at, request)
        return Resolved(profile=profile, device=device)

    def _is_suppressed(self, request: IdentityRequest) -> bool:
        return (
            request.device_key in self.suppressed_devices
            or request.user_id in self.suppressed_users
            or request.previous_id in self.suppressed_devices
            or request.previous_id in self.suppressed_users
        )

    def live(self, profile: Profile) -> Profile:
        """Rule 8: follow ``merged_into`` to the live profile."""
        for _ in range(100):
            target = self.merge_targets.get(id(profile))
            if target is None:
                if profile.merged_into_id is None:
                    return profile
                target = self.profiles[profile.merged_into_id]
            profile = target
        raise IdentityError("Merge chain too long (a cycle?)", code="merge_cycle")

    def _user_profile(self, user_id: str, *, create: bool) -> Profile:
        existing = self.by_user_id.get(user_id) or self.aliases.get(user_id)
        if existing is not None:
            return self.live(existing)
        if not create:
            raise IdentityError(f"Unknown user id {user_id!r}", code="not_found")
        return self._new_profile(user_id)

    def _lookup_user(self, user_id: str) -> Profile | None:
        existing = self.by_user_id.get(user_id) or self.aliases.get(user_id)
        return self.live(existing) if existing is not None else None

    def _profile_at(self, device: Device, at: datetime) -> Profile:
        """Device-only message: the profile the device was bound to at ``at``."""
        if at >= device.binding_changed_at:
            return self.live(device.profile)
        history = self.history.get(device.device_id) or []
        if not history:
            return self.live(device.profile)
        position = bisect.bisect_right([binding.bound_at for binding in history], at) - 1
        return self.live(history[max(position, 0)].profile)

    def _link(self, device: Device, user_id: str, at: datetime) -> Profile:
        """Rules 2 to 4: a message carrying both the device's id and user id ``user_id``."""
        target = self._lookup_user(user_id)
        if at < device.binding_changed_at:
            # Older than the device's latest binding change: recorded on the profile its ids
            # name, the binding is left alone.
            return target or self._new_profile(user_id)
        current = self.live(device.profile)
        if target is current:
            return current
        if target is None:
            if current.kind == Profile.Kind.GUEST:
                self._convert(current, user_id)  # rule 2: in place, nothing moves
                return current
            target = self._new_profile(user_id)  # rule 4, new user
            self._rebind(device, target, at, DeviceBinding.Reason.LOGIN)
            return target
        if current.kind == Profile.Kind.GUEST:
            self._rebind(device, target, at, DeviceBinding.Reason.IDENTIFY)  # rule 3
            self._request_merge(current, target, ProfileMerge.Reason.IDENTIFY)
        else:
            self._rebind(device, target, at, DeviceBinding.Reason.LOGIN)  # rule 4
        return target

    def _logout(self, device: Device, at: datetime) -> Profile:
        """Rule 5: the device gets a fresh guest profile."""
        if at < device.binding_changed_at:
            return self._profile_at(device, at)
        guest = self._new_profile(None)
        self._rebind(device, guest, at, DeviceBinding.Reason.LOGOUT)
        return guest

    def _alias(self, request: IdentityRequest) -> Resolved:
        """Rule 7's alias(previousId, userId): like rules 2/3 for previousId's profile."""
        previous_id, user_id = request.previous_id, request.user_id
        if not previous_id or not user_id:
            raise IdentityError("alias needs previousId and userId.", code="missing_ids")
        at = request.timestamp
        target = self._lookup_user(user_id)
        source = self._lookup_user(previous_id)
        device = self.devices.get(previous_id) if source is None else None
        if source is None and device is not None:
            source = self.live(device.profile)
        if source is None:
            # previousId was never seen: it becomes another id of userId's person.
            target = target or self._new_profile(user_id)
            self._add_alias(previous_id, target)
            return Resolved(profile=target, device=device)
        if target is None:
            if source.kind == Profile.Kind.GUEST:
                self._convert(source, user_id)
            else:
                self._add_alias(user_id, source)
            return Resolved(profile=source, device=device)
        if target is source:
            return Resolved(profile=target, device=device)
        if source.kind == Profile.Kind.IDENTIFIED:
            raise IdentityError(
                f"{previous_id!r} and {user_id!r} are two identified profiles; "
                "they are only merged by staff (forced merge).",
                code="alias_refused",
            )
        if device is not None and at >= device.binding_changed_at:
            self._rebind(device, target, at, DeviceBinding.Reason.IDENTIFY)
        self._request_merge(source, target, ProfileMerge.Reason.ALIAS)
        return Resolved(profile=target, device=device)

    # -- in-memory mutations, written by save() ----------------------------------------------

    def _new_profile(self, user_id: str | None) -> Profile:
        profile = Profile(
            app=self.app,
            user_id=user_id,
            kind=Profile.Kind.IDENTIFIED if user_id else Profile.Kind.GUEST,
            attributes={},
            attribute_times={},
        )
        self.new_profiles.append(profile)
        if user_id is not None:
            self.by_user_id[user_id] = profile
        return profile

    def _new_device(self, device_key: str, profile: Profile, at: datetime) -> Device:
        device = Device(
            app=self.app,
            device_id=device_key,
            profile=profile,
            binding_changed_at=at,
            first_seen_at=at,
            last_seen_at=at,
            attributes={},
        )
        self.devices[device_key] = device
        self.new_devices.append(device)
        binding = _Binding(bound_at=at, profile=profile)
        self.history[device_key] = [binding]
        self.new_bindings.append((device, binding, DeviceBinding.Reason.FIRST_SEEN))
        return device

    def _convert(self, profile: Profile, user_id: str) -> None:
        profile.user_id = user_id
        profile.kind = Profile.Kind.IDENTIFIED
        self.by_user_id[user_id] = profile
        self._touch(profile)

    def _rebind(self, device: Device, profile: Profile, at: datetime, reason: str) -> None:
        history = self.history.get(device.device_id)
        if history is None:
            # No message of this batch was older than the binding being replaced, so that
            # binding is all of the history a later message of the batch can need.
            history = [_Binding(bound_at=device.binding_changed_at, profile=device.profile)]
            self.history[device.device_id] = history
        device.profile = profile
        device.binding_changed_at = at
        binding = _Binding(bound_at=at, profile=profile)
        history.append(binding)
        self.new_bindings.append((device, binding, reason))
        if device.pk is not None:
            self.dirty_devices[device.pk] = device

    def _request_merge(self, source: Profile, target: Profile, reason: str) -> None:
        """Rule 3: record the merge (outbox row) and make the source a tombstone at once."""
        self.merge_targets[id(source)] = target
        self.merges.append(
            ProfileMerge(
                app=self.app,
                source=source,
                target=target,
                reason=reason,
                source_snapshot=profile_snapshot(source),
            )
        )

    def _add_alias(self, alias: str, profile: Profile) -> None:
        self.aliases[alias] = profile
        self.new_aliases.append((alias, profile))

    def _apply_attributes(
        self,
        profile: Profile,
        ops: list[AttributeOp],
        at: datetime,
        request: IdentityRequest | None = None,
    ) -> None:
        changed, problems = self.attribute_writer.apply(
            profile=profile,
            ops=ops,
            at=at,
            source=request.attribute_source if request is not None else "ingestion",
        )
        if request is not None:  # assigned, not extended: a retried transaction re-resolves
            request.attribute_errors = [problem.as_json() for problem in problems]
        if changed:
            self._touch(profile)

    def _update_device(self, device: Device, request: IdentityRequest) -> None:
        """Device facts from the newest message win; a late message does not roll them back."""
        if request.push_token is not None:
            self._claim_token(device, request.push_token)
        if request.timestamp < device.last_seen_at and device.pk is not None:
            return
        changed = False
        for name, value in request.device_fields.items():
            if isinstance(value, str):
                value = value[: DEVICE_FIELD_LENGTHS.get(name, 255)]  # SDK strings may be longer
            if value is not None and getattr(device, name) != value:
                setattr(device, name, value)
                changed = True
        for name, value in request.device_attributes.items():
            if device.attributes.get(name) != value:
                device.attributes[name] = value
                changed = True
        if changed and device.pk is not None:
            self.dirty_devices[device.pk] = device

    def _claim_token(self, device: Device, token: str) -> None:
        """Rule 9: a push token belongs to one device of the app at a time."""
        if device.push_token == token:
            self.tokens_claimed[token] = device
            return
        previous_holder = self.tokens_claimed.get(token)
        if previous_holder is not None and previous_holder is not device:
            previous_holder.push_token = None
        device.push_token = token or None
        if token:
            self.tokens_claimed[token] = device
        if device.pk is not None:
            self.dirty_devices[device.pk] = device

    def _touch(self, profile: Profile) -> None:
        if profile.pk is not None:
            self.dirty_profiles[profile.pk] = profile

    # -- writing: a constant number of statements --------------------------------------------

    def save_identities(self) -> None:
        """Insert the new profiles, devices, bindings, aliases and merges (they need pks before
        events can point at them). Updates of existing rows wait for :meth:`save_activity`."""
        if self.new_profiles:
            # merged_into of a new source is set by save_activity's UPDATE: its target may be
            # in this very INSERT.
            rows_insert(Profile, self.new_profiles)
            for profile in self.new_profiles:
                self.profiles[profile.pk] = profile
        if self.tokens_claimed:
            # Take the claimed tokens off every other device of the app first (rule 9).
            Device.objects.filter(app=self.app, push_token__in=list(self.tokens_claimed)).exclude(
                pk__in=[d.pk for d in self.tokens_claimed.values() if d.pk is not None]
            ).update(push_token=None, updated_at=timezone.now())
        if self.new_devices:
            rows_insert(Device, self.new_devices)
        if self.new_bindings:
            rows_insert(
                DeviceBinding,
                [
                    DeviceBinding(
                        app=self.app,
                        device=device,
                        profile=binding.profile,
                        bound_at=binding.bound_at,
                        reason=reason,
                    )
                    for device, binding, reason in self.new_bindings
                ],
            )
        if self.new_aliases:
            rows_insert(
                ProfileAlias,
                [
                    ProfileAlias(app=self.app, alias=alias, profile=profile)
                    for alias, profile in self.new_aliases
                ],
            )
        if self.merges:
            rows_insert(ProfileMerge, self.merges)
            merge_ids = [merge.pk for merge in self.merges]
            transaction.on_commit(lambda: merges_enqueue(merge_ids))
        self.attribute_writer.save()

    def same_person(self, first_id: int, second_id: int) -> bool:
        """Whether two profile ids of this batch resolve to the same live profile."""
        first, second = self.profiles.get(first_id), self.profiles.get(second_id)
        if first is None or second is None:
            return first_id == second_id
        return self.live(first).pk == self.live(second).pk

    def save_activity(
        self,
        activity: Iterable[tuple[Profile, Device | None, datetime, int]],
        *,
        new_sessions: dict[int, int] | None = None,
    ) -> None:
        """Counters and last seen for ``(profile, device, timestamp, new_events)`` of the stored
        events and ``new_sessions`` per profile id, then one UPDATE for the profiles and one
        for the devices that changed."""
        per_profile: dict[int, list[Any]] = defaultdict(lambda: [None, None, 0])
        per_device: dict[int, datetime] = {}
        for profile, device, at, count in activity:
            entry = per_profile[profile.pk]
            entry[0] = at if entry[0] is None else min(entry[0], at)
            entry[1] = at if entry[1] is None else max(entry[1], at)
            entry[2] += count
            if device is not None and (device.pk not in per_device or per_device[device.pk] < at):
                per_device[device.pk] = at
        for profile_pk, (first, last, count) in per_profile.items():
            profile = self.profiles[profile_pk]
            if profile.first_seen_at is None or first < profile.first_seen_at:
                profile.first_seen_at = first
            if profile.last_seen_at is None or last > profile.last_seen_at:
                profile.last_seen_at = last
            profile.event_count += count
            self.dirty_profiles[profile_pk] = profile
        for profile_pk, count in (new_sessions or {}).items():
            profile = self.profiles[profile_pk]
            profile.session_count += count
            self.dirty_profiles[profile_pk] = profile
        for profile in self.profiles.values():
            target = self.merge_targets.get(id(profile))
            if target is not None:
                profile.merged_into = target
                self.dirty_profiles[profile.pk] = profile
        for device in self.devices.values():
            seen = per_device.get(device.pk)
            if seen is not None and seen > device.last_seen_at:
                device.last_seen_at = seen
                self.dirty_devices[device.pk] = device
        now = timezone.now()
        profiles = list(self.dirty_profiles.values())
        for profile in profiles:
            profile.updated_at = now
        if profiles:
            rows_update(
                Profile,
                profiles,
                [
                    "user_id",
                    "kind",
                    "merged_into",
                    "attributes",
                    "attribute_times",
                    "first_seen_at",
                    "last_seen_at",
                    "event_count",
                    "session_count",
                    "updated_at",
                ],
            )
        devices = list(self.dirty_devices.values())
        for device in devices:
            device.updated_at = now
        if devices:
            rows_update(
                Device,
                devices,
                [
                    "profile",
                    "binding_changed_at",
                    "push_token",
                    "last_seen_at",
                    "updated_at",
                    "attributes",
                    *DEVICE_FIELDS,
                ],
            )


def profile_snapshot(profile: Profile) -> dict[str, Any]:
    """What a merge keeps of its source so an undo can restore it exactly."""
    return {
        "user_id": profile.user_id,
        "kind": profile.kind,
        "attributes": profile.attributes,
        "attribute_times": profile.attribute_times,
        "first_seen_at": profile.first_seen_at.isoformat() if profile.first_seen_at else None,
        "last_seen_at": profile.last_seen_at.isoformat() if profile.last_seen_at else None,
        "event_count": profile.event_count,
        "session_count": profile.session_count,
    }


def resolve_batch(
    *, app: App, requests: list[IdentityRequest]
) -> tuple[BatchResolver, list[Resolved]]:
    """Load, lock and resolve ``requests`` (inside the caller's transaction), insert the new
    identity rows, and return the resolver (for :meth:`BatchResolver.save_activity`) with one
    :class:`Resolved` per request, in order."""
    resolver = BatchResolver(app=app, requests=requests)
    resolver.load()
    results = resolver.resolve()
    resolver.save_identities()
    return resolver, results


def merges_enqueue(merge_ids: list[int]) -> None:
    """Queue merge tasks after commit. A broker outage is logged, not raised: the merge rows
    are already committed and the sweeper re-queues them."""
    from profiles.tasks import profile_merge_run

    for merge_id in merge_ids:
        try:
            profile_merge_run.delay(merge_id)
        except Exception:  # the broker is down: the sweeper will pick the row up
            logger.warning(
                "could not enqueue merge %s; the sweeper will retry", merge_id, exc_info=True
            )


def in_retrying_transaction(work: Any, *, attempts: int = 5) -> Any:
    """Run ``work()`` in a transaction, re-running it on unique-constraint races and deadlocks.

    Still racing after ``attempts`` (or the database failing over): nothing was written, and
    the caller's request answers ``503 retry_later`` with ``Retry-After``; clients retry with
    the same message ids, which dedupe makes safe. Inside an outer transaction the error is
    re-raised as is, for the outer level to retry."""
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                return work()
        except RETRYABLE_ERRORS as error:
            if connection.in_atomic_block:
                raise
            if attempt == attempts - 1:
                logger.warning("gave up after %d attempts: %s", attempts, error)
                raise ApplicationError(
                    "The database is busy; retry the request.",
                    code="retry_later",
                    status_code=503,
                    retry_after=1,
                ) from None
            logger.info(
                "identity race (%s); retrying, attempt %d", type(error).__name__, attempt + 2
            )
    raise AssertionError("unreachable")


# -- merges (rule 3 and staff merges): the outbox row is the truth, the task moves rows ---------


def _merge_settings() -> tuple[int, float]:
    """(batch size, pause between batches): a throttle for big merges on a busy database."""
    return (
        int(getattr(settings, "MERGE_BATCH_SIZE", 5000)),
        float(getattr(settings, "MERGE_BATCH_PAUSE_SECONDS", 0.0)),
    )


def _lock_profiles(*profile_ids: int) -> dict[int, Profile]:
    """Lock profiles in id order (every writer locks in this order)."""
    rows = Profile.objects.filter(pk__in=profile_ids).order_by("pk").select_for_update(no_key=True)
    return {profile.pk: profile for profile in rows}


def _live_locked(profile: Profile) -> Profile:
    for _ in range(100):
        if profile.merged_into_id is None:
            return profile
        profile = Profile.objects.select_for_update(no_key=True).get(pk=profile.merged_into_id)
    raise IdentityError("The merge chain does not end (a cycle?).", code="merge_cycle")


def _set_once_keys(app_id: int) -> frozenset[str]:
    from profiles.models import ProfileField

    return frozenset(
        ProfileField.objects.filter(app_id=app_id, set_once=True).values_list("key", flat=True)
    )


def merge_attributes(
    *, source: Profile, target: Profile, set_once_keys: frozenset[str]
) -> dict[str, Any]:
    """Fold the source's attributes into the target's: the target wins on conflict, set-once
    keys keep the earliest value. Returns the target's prior state of every key it changed."""
    prior: dict[str, Any] = {}
    for key, value in source.attributes.items():
        source_time = source.attribute_times.get(key, "")
        present = key in target.attributes
        if present:
            if key not in set_once_keys:
                continue
            target_time = target.attribute_times.get(key, "")
            if not source_time or (target_time and target_time <= source_time):
                continue
        prior[key] = {
            "present": present,
            "value": target.attributes.get(key),
            "time": target.attribute_times.get(key),
        }
        target.attributes[key] = value
        if source_time:
            target.attribute_times[key] = source_time
    return prior


def merge_run(*, merge_id: int) -> ProfileMerge:
    """Run (or resume) a merge: idempotent, batched, safe to run twice or concurrently.

    Events move in bounded batches, each its own transaction holding both profile locks, so a
    killed worker leaves a consistent state (the target's counter moves with each batch) and
    a re-run continues where it stopped. Sessions, devices, aliases and attributes move in the
    final transaction, which also marks the merge done.
    """
    from events.services import events_reassign
    from sessions_timeline.services import sessions_reassign

    merge = ProfileMerge.objects.get(pk=merge_id)
    if merge.status in (ProfileMerge.Status.DONE, ProfileMerge.Status.UNDONE):
        return merge
    batch_size, pause = _merge_settings()
    now = timezone.now()
    ProfileMerge.objects.filter(pk=merge_id).update(
        status=ProfileMerge.Status.RUNNING,
        attempts=F("attempts") + 1,
        started_at=merge.started_at or now,
        heartbeat_at=now,
    )
    started = time.monotonic()
    after = None  # where the next batch starts (events_reassign)
    # A small source (most logins: a guest with a few events) moves in the final transaction
    # alone, which moves whatever is left anyway: one transaction instead of two. The
    # snapshot's count is from the request; events recorded since are at most a few batches.
    small = int((merge.source_snapshot or {}).get("event_count", batch_size)) <= batch_size // 2
    while not small:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # A batch lost in a crash is moved again by the resumed merge (its counters
                # commit with it), so its commit need not wait for the WAL flush.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit = off")
            profiles = _lock_profiles(merge.source_id, merge.target_id)
            target = _live_locked(profiles[merge.target_id])
            moved, after = events_reassign(
                source_id=merge.source_id, target_id=target.pk, limit=batch_size, after=after
            )
            if moved:
                Profile.objects.filter(pk=target.pk).update(event_count=F("event_count") + moved)
                Profile.objects.filter(pk=merge.source_id).update(
                    event_count=Greatest(F("event_count") - moved, 0)
                )
            ProfileMerge.objects.filter(pk=merge_id).update(
                heartbeat_at=timezone.now(), events_moved=F("events_moved") + moved
            )
        if moved < batch_size:
            break
        if pause:
            time.sleep(pause)
    with transaction.atomic():
        merge = ProfileMerge.objects.select_for_update().get(pk=merge_id)
        if merge.status in (ProfileMerge.Status.DONE, ProfileMerge.Status.UNDONE):
            return merge
        devices = list(
            Device.objects.filter(profile_id=merge.source_id)
            .order_by("pk")
            .select_for_update(no_key=True)
        )
        profiles = _lock_profiles(merge.source_id, merge.target_id)
        source = profiles[merge.source_id]
        target = _live_locked(profiles[merge.target_id])
        # Events that reached the source between the last batch and these locks.
        late, _ = events_reassign(source_id=source.pk, target_id=target.pk, limit=10**12)
        moved_sessions = sessions_reassign(source_id=source.pk, target_id=target.pk)
        Device.objects.filter(pk__in=[device.pk for device in devices]).update(
            profile=target, updated_at=timezone.now()
        )
        DeviceBinding.objects.bulk_create(
            DeviceBinding(
                app_id=merge.app_id,
                device=device,
                profile=target,
                bound_at=device.binding_changed_at,
                reason=DeviceBinding.Reason.MERGE,
            )
            for device in devices
        )
        moved_aliases = list(
            ProfileAlias.objects.filter(profile=source).values_list("alias", flat=True)
        )
        if moved_aliases:  # a guest has none; its merged_into (set at request) stops new ones
            ProfileAlias.objects.filter(profile=source).update(profile=target)
        if merge.forced and source.user_id:
            # Rule 6: the source's user id becomes an alias of the target.
            ProfileAlias.objects.get_or_create(
                app_id=merge.app_id, alias=source.user_id, defaults={"profile": target}
            )
        repointed = list(
            Profile.objects.filter(merged_into=source)
            .exclude(pk=target.pk)
            .values_list("pk", flat=True)
        )
        Profile.objects.filter(pk__in=repointed).update(merged_into=target)
        # ``target`` was read under its lock in this transaction, after every earlier batch
        # committed its counts: no refresh. Set-once fields only matter for shared keys.
        shared_keys = source.attributes.keys() & target.attributes.keys()
        merge.target_prior = {
            "attributes": merge_attributes(
                source=source,
                target=target,
                set_once_keys=_set_once_keys(merge.app_id) if shared_keys else frozenset(),
            ),
            "first_seen_at": _iso(target.first_seen_at),
            "last_seen_at": _iso(target.last_seen_at),
        }
        target.first_seen_at = _min_time(target.first_seen_at, source.first_seen_at)
        target.last_seen_at = _max_time(target.last_seen_at, source.last_seen_at)
        target.event_count += late
        target.session_count += moved_sessions
        target.save(
            update_fields=[
                "attributes",
                "attribute_times",
                "first_seen_at",
                "last_seen_at",
                "event_count",
                "session_count",
                "updated_at",
            ]
        )
        source.event_count = 0
        source.session_count = 0
        source.merged_into = target
        source.save(update_fields=["event_count", "session_count", "merged_into", "updated_at"])
        finished = timezone.now()
        merge.target = target
        merge.events_moved += late
        merge.status = ProfileMerge.Status.DONE
        merge.finished_at = finished
        merge.heartbeat_at = finished
        merge.last_error = ""
        merge.counts = {
            # All attempts together: the events moved from the source (its own and those of
            # profiles merged into it earlier), counted by the batches that moved them.
            "events": merge.events_moved,
            "sessions": moved_sessions,
            "devices": [device.pk for device in devices],
            "aliases": moved_aliases,
            "tombstones": repointed,
            "seconds": round(time.monotonic() - started, 3),
            "attempts": merge.attempts + 1,
        }
        merge.save()
    return merge


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _min_time(first: datetime | None, second: datetime | None) -> datetime | None:
    return min((t for t in (first, second) if t is not None), default=None)


def _max_time(first: datetime | None, second: datetime | None) -> datetime | None:
    return max((t for t in (first, second) if t is not None), default=None)


def stale_work_ids(model: Any, *, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Outbox rows (merges, jobs) left pending past the grace period (the broker was down at
    commit) or running without a heartbeat (the worker died): what the sweeper re-queues."""
    now = now or timezone.now()
    pending_grace = int(getattr(settings, "MERGE_PENDING_GRACE_SECONDS", 20))
    stuck_after = int(getattr(settings, "MERGE_STUCK_AFTER_SECONDS", 300))
    stale = model.objects.filter(
        Q(status="pending", created_at__lt=now - timedelta(seconds=pending_grace))
        | Q(status="running", heartbeat_at__lt=now - timedelta(seconds=stuck_after))
    ).order_by("pk")
    return list(stale.values_list("pk", flat=True)[:limit])


def merges_sweep(*, now: datetime | None = None) -> int:
    """Re-queue stale merges. Returns how many were queued."""
    merge_ids = stale_work_ids(ProfileMerge, now=now)
    merges_enqueue(merge_ids)
    return len(merge_ids)


# -- staff operations: forced merges, previews, undo ---------------------------------------------


@dataclass
class MergePreview:
    source: Profile
    target: Profile
    events: int
    sessions: int
    devices: int
    aliases: int
    conflicts: dict[str, tuple[Any, Any]]  # key -> (source value, target value that wins)
    needs_force: bool


def merge_preview(*, source: Profile, target: Profile) -> MergePreview:
    """A dry run: what a merge of ``source`` into ``target`` would move, and which attributes
    conflict (the target's value wins, except set-once keys, which keep the earliest)."""
    from events.models import Event
    from sessions_timeline.models import Session

    source, target = profile_live(source), profile_live(target)
    if source.pk == target.pk:
        raise IdentityError("Both are the same person already.", code="same_profile")
    conflicts = {
        key: (value, target.attributes[key])
        for key, value in source.attributes.items()
        if key in target.attributes and target.attributes[key] != value
    }
    return MergePreview(
        source=source,
        target=target,
        events=Event.objects.filter(profile=source).count(),
        sessions=Session.objects.filter(profile=source).count(),
        devices=Device.objects.filter(profile=source).count(),
        aliases=ProfileAlias.objects.filter(profile=source).count(),
        conflicts=conflicts,
        needs_force=source.kind == Profile.Kind.IDENTIFIED
        and target.kind == Profile.Kind.IDENTIFIED,
    )


def merge_request(
    *,
    source: Profile,
    target: Profile,
    requested_by: Any = None,
    force: bool = False,
) -> ProfileMerge:
    """A staff merge of ``source`` into ``target``: recorded (outbox) and queued on commit.

    Both resolve to their live profiles first; merging a profile into itself (or into a
    profile it already became) is refused. Two identified profiles need ``force`` (rule 6).
    Of A into B and B into A requested at once, the first to commit wins; the other finds
    both resolving to one profile and is refused as already merged.
    """
    if source.app_id != target.app_id:
        raise IdentityError("Profiles of different apps cannot be merged.", code="other_app")
    with transaction.atomic():
        locked = _lock_profiles(source.pk, target.pk)
        live_source = _live_locked(locked[source.pk])
        live_target = _live_locked(locked[target.pk])
        if live_source.pk == live_target.pk:
            raise IdentityError(
                "These profiles are already one person (merged).", code="already_merged"
            )
        both_identified = (
            live_source.kind == Profile.Kind.IDENTIFIED
            and live_target.kind == Profile.Kind.IDENTIFIED
        )
        if both_identified and not force:
            raise IdentityError(
                "Two identified profiles are only merged with force (rule 6).",
                code="force_required",
            )
        merge = ProfileMerge.objects.create(
            app_id=live_source.app_id,
            source=live_source,
            target=live_target,
            reason=ProfileMerge.Reason.STAFF,
            forced=both_identified,
            requested_by=requested_by,
            source_snapshot=profile_snapshot(live_source),
        )
        Profile.objects.filter(pk=live_source.pk).update(
            merged_into=live_target, updated_at=timezone.now()
        )
        merge_id = merge.pk
        transaction.on_commit(lambda: merges_enqueue([merge_id]))
    return merge


def merge_undo_problem(merge: ProfileMerge) -> str | None:
    """Why ``merge`` cannot be undone now, or None."""
    if merge.status == ProfileMerge.Status.UNDONE:
        return "This merge was already undone."
    if merge.status != ProfileMerge.Status.DONE:
        return f"This merge is {merge.status}; wait until it is done."
    later = (
        ProfileMerge.objects.filter(
            Q(source_id__in=[merge.source_id, merge.target_id])
            | Q(target_id__in=[merge.source_id, merge.target_id]),
            created_at__gte=merge.created_at,
        )
        .exclude(pk=merge.pk)
        .exclude(status=ProfileMerge.Status.UNDONE)
    )
    if later.filter(pk__gt=merge.pk).exists():
        return (
            "These profiles were merged again since; undo the later merge first "
            "(only the latest merge touching either profile can be undone)."
        )
    return None


def merge_undo(*, merge_id: int, requested_by: Any = None) -> ProfileMerge:
    """Undo the latest merge touching either profile, exactly: events, sessions, devices,
    aliases and tombstones go back, both profiles' attributes are restored, and what arrived
    since on the source's devices follows the binding history back to the source."""
    from events.services import events_restore
    from sessions_timeline.services import sessions_restore

    with transaction.atomic():
        merge = ProfileMerge.objects.select_for_update().get(pk=merge_id)
        problem = merge_undo_problem(merge)
        if problem:
            raise IdentityError(problem, code="undo_refused")
        moved_devices = [int(pk) for pk in merge.counts.get("devices", [])]
        devices = list(
            Device.objects.filter(pk__in=moved_devices)
            .order_by("pk")
            .select_for_update(no_key=True)
        )
        locked = _lock_profiles(merge.source_id, merge.target_id)
        source, target = locked[merge.source_id], locked[merge.target_id]
        # Rows first recorded on the source or on a profile merged into it before go back.
        origin_ids = [source.pk, *merge.counts.get("tombstones", [])]
        events_back = events_restore(
            source_id=source.pk,
            target_id=target.pk,
            origin_ids=origin_ids,
            device_ids=moved_devices,
            since=merge.created_at,
        )
        sessions_back = sessions_restore(
            source_id=source.pk, target_id=target.pk, origin_ids=origin_ids
        )
        now = timezone.now()
        Device.objects.filter(pk__in=moved_devices, profile=target).update(
            profile=source, updated_at=now
        )
        DeviceBinding.objects.bulk_create(
            DeviceBinding(
                app_id=merge.app_id,
                device=device,
                profile=source,
                bound_at=device.binding_changed_at,
                reason=DeviceBinding.Reason.UNDO,
            )
            for device in devices
        )
        ProfileAlias.objects.filter(
            app_id=merge.app_id, alias__in=merge.counts.get("aliases", [])
        ).update(profile=source)
        if merge.forced and merge.source_snapshot.get("user_id"):
            ProfileAlias.objects.filter(
                app_id=merge.app_id, alias=merge.source_snapshot["user_id"], profile=target
            ).delete()
        Profile.objects.filter(pk__in=merge.counts.get("tombstones", [])).update(merged_into=source)
        snapshot = merge.source_snapshot
        source.user_id = snapshot.get("user_id")
        source.kind = snapshot.get("kind", Profile.Kind.GUEST)
        source.attributes = snapshot.get("attributes", {})
        source.attribute_times = snapshot.get("attribute_times", {})
        source.first_seen_at = _parse_iso(snapshot.get("first_seen_at"))
        source.last_seen_at = _parse_iso(snapshot.get("last_seen_at"))
        source.merged_into = None
        source.event_count = events_back.total
        source.session_count = sessions_back
        if events_back.newest is not None:
            source.last_seen_at = _max_time(source.last_seen_at, events_back.newest)
        source.save()
        prior = merge.target_prior or {}
        for key, state in (prior.get("attributes") or {}).items():
            if state.get("present"):
                target.attributes[key] = state.get("value")
                if state.get("time"):
                    target.attribute_times[key] = state["time"]
                else:
                    target.attribute_times.pop(key, None)
            else:
                target.attributes.pop(key, None)
                target.attribute_times.pop(key, None)
        target.first_seen_at = _parse_iso(prior.get("first_seen_at")) or target.first_seen_at
        if prior.get("last_seen_at") and events_back.newest is None:
            target.last_seen_at = _max_time(
                _parse_iso(prior.get("last_seen_at")), target.last_seen_at
            )
        target.event_count = max(0, target.event_count - events_back.total)
        target.session_count = max(0, target.session_count - sessions_back)
        target.save()
        merge.status = ProfileMerge.Status.UNDONE
        merge.undone_at = now
        merge.counts = {
            **merge.counts,
            "undo": {
                "events": events_back.total,
                "events_since": events_back.since,
                "sessions": sessions_back,
                "by": getattr(requested_by, "pk", None),
            },
        }
        merge.save()
    return merge


# -- re-sync: derived data recomputed from the raw rows -----------------------------------------

RESYNC_CHUNK = 500


def profiles_resync(*, profile_ids: list[int]) -> int:
    """Recompute counters and first/last seen of ``profile_ids`` from their events and sessions
    (set-based: a few statements per chunk), and re-bind devices left on tombstones to the live
    profile. Returns how many profiles were updated."""
    from events.models import Event
    from sessions_timeline.models import Session

    if not profile_ids:
        return 0
    events = Event.objects.filter(profile=OuterRef("pk")).order_by().values("profile")
    sessions = Session.objects.filter(profile=OuterRef("pk")).order_by().values("profile")
    with transaction.atomic():
        updated = Profile.objects.filter(pk__in=profile_ids, merged_into__isnull=True).update(
            event_count=Coalesce(Subquery(events.annotate(n=Count("*")).values("n")), 0),
            session_count=Coalesce(Subquery(sessions.annotate(n=Count("*")).values("n")), 0),
            first_seen_at=Subquery(events.annotate(t=Min("timestamp")).values("t")),
            last_seen_at=Subquery(events.annotate(t=Max("timestamp")).values("t")),
            updated_at=timezone.now(),
        )
        Profile.objects.filter(pk__in=profile_ids, merged_into__isnull=False).update(
            event_count=0, session_count=0
        )
        stranded = list(
            Device.objects.filter(profile_id__in=profile_ids, profile__merged_into__isnull=False)
            .select_related("profile")
            .select_for_update(of=("self",))
        )
        for device in stranded:
            Device.objects.filter(pk=device.pk).update(
                profile=profile_live(device.profile), updated_at=timezone.now()
            )
    return updated


def resync_run(
    *,
    app: App | None = None,
    profile: Profile | None = None,
    progress: Any = None,
) -> dict[str, int]:
    """Re-sync one profile (with its tombstones) or a whole app, in chunks of profile ids:
    sessions rebuilt from the events, daily activity, counters, first/last seen and device
    bindings recomputed; ``progress(done, total)`` is called after each chunk."""
    from sessions_timeline.services import daily_activity_rebuild, sessions_rebuild

    if profile is not None:
        app = profile.app
        ids = [
            profile.pk,
            *Profile.objects.filter(merged_into=profile).values_list("pk", flat=True),
        ]
    else:
        assert app is not None
        ids = list(Profile.objects.filter(app=app).order_by("pk").values_list("pk", flat=True))
    total, done, updated = len(ids), 0, 0
    if progress:
        progress(0, total)
    for start in range(0, total, RESYNC_CHUNK):
        chunk = ids[start : start + RESYNC_CHUNK]
        assert app is not None
        with transaction.atomic():
            for profile_id in chunk:
                sessions_rebuild(app=app, profile_id=profile_id)
            daily_activity_rebuild(profile_ids=chunk)
        updated += profiles_resync(profile_ids=chunk)
        done += len(chunk)
        if progress:
            progress(done, total)
    return {"profiles": total, "updated": updated}


def resync_job_create(
    *, app: App, profile: Profile | None = None, requested_by: Any = None
) -> BackgroundJob:
    """Record a re-sync job and queue it on commit (the sweeper re-queues it if the broker
    is down)."""
    params = {"profile_id": profile.pk} if profile is not None else {}
    job = BackgroundJob.objects.create(
        app=app, kind=BackgroundJob.Kind.RESYNC, params=params, requested_by=requested_by
    )
    job_id = job.pk
    transaction.on_commit(lambda: jobs_enqueue([job_id]))
    return job


def jobs_enqueue(job_ids: list[int]) -> None:
    from profiles.tasks import background_job_run

    for job_id in job_ids:
        try:
            background_job_run.delay(job_id)
        except Exception:
            logger.warning(
                "could not enqueue job %s; the sweeper will retry", job_id, exc_info=True
            )


def background_job_run(*, job_id: int) -> BackgroundJob:
    """Run a recorded job, keeping its progress in the row."""
    job = BackgroundJob.objects.get(pk=job_id)
    if job.status == BackgroundJob.Status.DONE:
        return job
    now = timezone.now()
    BackgroundJob.objects.filter(pk=job_id).update(
        status=BackgroundJob.Status.RUNNING, started_at=now, heartbeat_at=now
    )

    def progress(done: int, total: int) -> None:
        BackgroundJob.objects.filter(pk=job_id).update(
            progress_done=done, progress_total=total, heartbeat_at=timezone.now()
        )

    try:
        profile_id = job.params.get("profile_id")
        profile = Profile.objects.get(pk=profile_id) if profile_id else None
        result = resync_run(app=job.app, profile=profile, progress=progress)
    except Exception as error:
        BackgroundJob.objects.filter(pk=job_id).update(
            status=BackgroundJob.Status.FAILED,
            error=f"{type(error).__name__}: {error}"[:2000],
            finished_at=timezone.now(),
        )
        raise
    BackgroundJob.objects.filter(pk=job_id).update(
        status=BackgroundJob.Status.DONE, result=result, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job


def jobs_sweep(*, now: datetime | None = None) -> int:
    """Re-queue stale jobs. Returns how many were queued."""
    job_ids = stale_work_ids(BackgroundJob, now=now, limit=100)
    jobs_enqueue(job_ids)
    return len(job_ids)
