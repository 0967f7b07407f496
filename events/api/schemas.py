"""Serializers that describe the ingestion payloads in the OpenAPI schema (not used to
validate on the hot path: see events/api/native.py)."""

from rest_framework import serializers

from profiles.api.serializers import AttributeErrorSerializer
from profiles.models import Profile


class DeviceRegisterSerializer(serializers.Serializer):
    device_id = serializers.CharField(max_length=255)
    user_id = serializers.CharField(max_length=255, required=False)
    platform = serializers.CharField(max_length=32, required=False, help_text="ios, android, web")
    os_name = serializers.CharField(max_length=64, required=False)
    os_version = serializers.CharField(max_length=64, required=False)
    model = serializers.CharField(max_length=128, required=False)
    manufacturer = serializers.CharField(max_length=128, required=False)
    app_version = serializers.CharField(max_length=64, required=False)
    app_build = serializers.CharField(max_length=64, required=False)
    sdk_name = serializers.CharField(max_length=64, required=False)
    sdk_version = serializers.CharField(max_length=64, required=False)
    locale = serializers.CharField(max_length=35, required=False)
    timezone = serializers.CharField(max_length=64, required=False)
    push_token = serializers.CharField(max_length=512, required=False)
    push_opt_in = serializers.BooleanField(required=False)
    timestamp = serializers.DateTimeField(required=False)


class ProfileRefSerializer(serializers.Serializer):
    profile_id = serializers.UUIDField(help_text="The profile's public id")
    user_id = serializers.CharField(allow_null=True)
    kind = serializers.ChoiceField(choices=Profile.Kind.choices)


class IdentifyResultSerializer(ProfileRefSerializer):
    attribute_errors = AttributeErrorSerializer(
        many=True,
        required=False,
        help_text="Present when some attributes were refused (kept in quarantine); "
        "the rest of the identify applied.",
    )


class DeviceResultSerializer(ProfileRefSerializer):
    device_id = serializers.CharField()
    push_token = serializers.CharField(allow_null=True)
    push_opt_in = serializers.BooleanField(allow_null=True)


class AttributeOperationSerializer(serializers.Serializer):
    op = serializers.ChoiceField(
        choices=["set", "set_once", "unset", "increment", "append", "remove"]
    )
    key = serializers.CharField(max_length=128)
    value = serializers.JSONField(required=False)


class IdentifySerializer(serializers.Serializer):
    device_id = serializers.CharField(
        max_length=255, required=False, help_text="required with the write key"
    )
    user_id = serializers.CharField(max_length=255)
    attributes = serializers.DictField(required=False, help_text="keys to set")
    operations = AttributeOperationSerializer(many=True, required=False)
    timestamp = serializers.DateTimeField(required=False)
    message_id = serializers.CharField(max_length=100, required=False)


class NativeEventSerializer(serializers.Serializer):
    message_id = serializers.CharField(max_length=100, required=False)
    type = serializers.ChoiceField(choices=["track", "screen", "page"], default="track")
    name = serializers.CharField(max_length=255)
    device_id = serializers.CharField(max_length=255, required=False)
    user_id = serializers.CharField(
        max_length=255, required=False, help_text="alone: server key only"
    )
    session_id = serializers.CharField(max_length=128, required=False)
    properties = serializers.DictField(required=False)
    context = serializers.DictField(required=False)  # type: ignore[assignment]
    timestamp = serializers.DateTimeField(required=False)


class EventBatchSerializer(serializers.Serializer):
    events = NativeEventSerializer(many=True)


class ItemErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()


class BatchResultSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = ItemErrorSerializer(many=True)  # type: ignore[assignment]


class SegmentMessageSerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=["identify", "track", "screen", "page", "group", "alias"],
        required=False,
        help_text="in a batch",
    )
    userId = serializers.CharField(required=False, allow_null=True)
    anonymousId = serializers.CharField(required=False, allow_null=True)
    previousId = serializers.CharField(required=False, help_text="alias")
    event = serializers.CharField(required=False, help_text="track")
    name = serializers.CharField(required=False, help_text="screen, page")
    groupId = serializers.CharField(required=False, help_text="group")
    properties = serializers.DictField(required=False)
    traits = serializers.DictField(required=False)
    context = serializers.DictField(required=False)  # type: ignore[assignment]
    messageId = serializers.CharField(required=False, max_length=100)
    timestamp = serializers.DateTimeField(required=False)
    originalTimestamp = serializers.DateTimeField(required=False)
    sentAt = serializers.DateTimeField(required=False)
    writeKey = serializers.CharField(required=False)


class SegmentBatchSerializer(serializers.Serializer):
    batch = SegmentMessageSerializer(many=True)
    context = serializers.DictField(required=False)  # type: ignore[assignment]
    sentAt = serializers.DateTimeField(required=False)
    writeKey = serializers.CharField(required=False)
