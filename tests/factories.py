"""Typed factory_boy factories, one per model."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

import factory
from django.contrib.auth import get_user_model

from events.models import Event
from profiles.models import (
    App,
    AppMembership,
    BackgroundJob,
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
    suppression_hash,
)
from sessions_timeline.models import ProfileDailyActivity, Session

FIXED_TIME = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    is_staff = True
    password = factory.django.Password("correct-horse-battery")


class AppFactory(factory.django.DjangoModelFactory[App]):
    class Meta:
        model = App

    name = factory.Sequence(lambda n: f"App {n}")
    write_key = factory.LazyFunction(lambda: "wk_" + secrets.token_urlsafe(24))
    server_key_hash = factory.LazyFunction(
        lambda: hashlib.sha256(secrets.token_bytes(32)).hexdigest()
    )
    server_key_prefix = "sk_factory"


class AppMembershipFactory(factory.django.DjangoModelFactory[AppMembership]):
    class Meta:
        model = AppMembership

    app = factory.SubFactory(AppFactory)
    user = factory.SubFactory(UserFactory)
    role = AppMembership.Role.VIEWER


class ProfileFactory(factory.django.DjangoModelFactory[Profile]):
    class Meta:
        model = Profile

    app = factory.SubFactory(AppFactory)
    user_id = factory.Sequence(lambda n: f"user-{n}")
    kind = factory.LazyAttribute(
        lambda p: Profile.Kind.IDENTIFIED if p.user_id else Profile.Kind.GUEST
    )
    first_seen_at = FIXED_TIME
    last_seen_at = FIXED_TIME


class GuestProfileFactory(ProfileFactory):
    user_id: Any = None


class DeviceFactory(factory.django.DjangoModelFactory[Device]):
    class Meta:
        model = Device

    app = factory.SubFactory(AppFactory)
    device_id = factory.Sequence(lambda n: f"device-{n}")
    profile = factory.SubFactory(GuestProfileFactory, app=factory.SelfAttribute("..app"))
    binding_changed_at = FIXED_TIME
    platform = "ios"
    os_name = "iOS"
    os_version = "18.1"
    model = "iPhone16,2"
    first_seen_at = FIXED_TIME
    last_seen_at = FIXED_TIME


class DeviceBindingFactory(factory.django.DjangoModelFactory[DeviceBinding]):
    class Meta:
        model = DeviceBinding

    device = factory.SubFactory(DeviceFactory)
    app = factory.SelfAttribute("device.app")
    profile = factory.SelfAttribute("device.profile")
    bound_at = FIXED_TIME
    reason = DeviceBinding.Reason.FIRST_SEEN


class ProfileFieldFactory(factory.django.DjangoModelFactory[ProfileField]):
    class Meta:
        model = ProfileField

    app = factory.SubFactory(AppFactory)
    key = factory.Sequence(lambda n: f"field_{n}")
    label = factory.LazyAttribute(lambda f: f.key.replace("_", " ").title())
    field_type = ProfileField.Type.STRING


class ProfileAliasFactory(factory.django.DjangoModelFactory[ProfileAlias]):
    class Meta:
        model = ProfileAlias

    profile = factory.SubFactory(ProfileFactory)
    app = factory.SelfAttribute("profile.app")
    alias = factory.Sequence(lambda n: f"alias-{n}")


class ProfileMergeFactory(factory.django.DjangoModelFactory[ProfileMerge]):
    class Meta:
        model = ProfileMerge

    target = factory.SubFactory(ProfileFactory)
    app = factory.SelfAttribute("target.app")
    source = factory.SubFactory(GuestProfileFactory, app=factory.SelfAttribute("..app"))
    reason = ProfileMerge.Reason.IDENTIFY


class SessionFactory(factory.django.DjangoModelFactory[Session]):
    class Meta:
        model = Session

    device = factory.SubFactory(DeviceFactory)
    app = factory.SelfAttribute("device.app")
    profile = factory.SelfAttribute("device.profile")
    started_at = FIXED_TIME
    last_event_at = FIXED_TIME
    event_count = 1


class EventFactory(factory.django.DjangoModelFactory[Event]):
    class Meta:
        model = Event

    profile = factory.SubFactory(ProfileFactory)
    app = factory.SelfAttribute("profile.app")
    type = Event.Type.TRACK
    name = "Product Viewed"
    properties = factory.LazyFunction(lambda: {"sku": "A-1"})
    timestamp = FIXED_TIME
    received_at = FIXED_TIME
    message_id = factory.Sequence(lambda n: f"msg-{n}")


class ProfileDailyActivityFactory(factory.django.DjangoModelFactory[ProfileDailyActivity]):
    class Meta:
        model = ProfileDailyActivity

    profile = factory.SubFactory(ProfileFactory)
    day = factory.LazyFunction(lambda: FIXED_TIME.date())
    events = 3


class BackgroundJobFactory(factory.django.DjangoModelFactory[BackgroundJob]):
    class Meta:
        model = BackgroundJob

    app = factory.SubFactory(AppFactory)
    kind = BackgroundJob.Kind.RESYNC


class QuarantinedAttributeFactory(factory.django.DjangoModelFactory[QuarantinedAttribute]):
    class Meta:
        model = QuarantinedAttribute

    profile = factory.SubFactory(ProfileFactory)
    app = factory.SelfAttribute("profile.app")
    key = "birthday"
    value = "not a date"
    code = "invalid_type"
    error = "birthday must be a date"
    source = "ingestion"
    received_at = FIXED_TIME


class DiscoveredFieldFactory(factory.django.DjangoModelFactory[DiscoveredField]):
    class Meta:
        model = DiscoveredField

    app = factory.SubFactory(AppFactory)
    key = factory.Sequence(lambda n: f"custom_{n}")
    sample_type = "string"
    first_seen_at = FIXED_TIME
    last_seen_at = FIXED_TIME
    seen_count = 1


class ProfileErasureFactory(factory.django.DjangoModelFactory[ProfileErasure]):
    class Meta:
        model = ProfileErasure

    app = factory.SubFactory(AppFactory)
    public_id = factory.Faker("uuid4", cast_to=None)


class SuppressionFactory(factory.django.DjangoModelFactory[Suppression]):
    class Meta:
        model = Suppression

    app = factory.SubFactory(AppFactory)
    kind = "user_id"
    value_hash = factory.Sequence(lambda n: suppression_hash(f"erased-{n}"))


class StaffActionFactory(factory.django.DjangoModelFactory[StaffAction]):
    class Meta:
        model = StaffAction

    user = factory.SubFactory(UserFactory)
    username = factory.SelfAttribute("user.username")
    app = factory.SubFactory(AppFactory)
    action = "export"
    object_type = "profile"
    result = StaffAction.Result.OK
