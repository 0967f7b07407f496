"""Output shapes of the profile API, and the request shapes for the OpenAPI schema (request
bodies are validated by profiles.attributes.ops_from_body, the same rules as native identify)."""

from rest_framework import serializers

from profiles.attributes import OPERATIONS
from profiles.models import Device, Profile


class DeviceOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = [
            "device_id",
            "platform",
            "os_name",
            "os_version",
            "model",
            "manufacturer",
            "app_version",
            "sdk_name",
            "sdk_version",
            "locale",
            "timezone",
            "push_token",
            "push_opt_in",
            "first_seen_at",
            "last_seen_at",
        ]


class ProfileOutSerializer(serializers.ModelSerializer):
    profile_id = serializers.UUIDField(source="public_id")
    devices = DeviceOutSerializer(many=True)

    class Meta:
        model = Profile
        fields = [
            "profile_id",
            "user_id",
            "kind",
            "attributes",
            "first_seen_at",
            "last_seen_at",
            "event_count",
            "session_count",
            "created_at",
            "devices",
        ]


class AttributeErrorSerializer(serializers.Serializer):
    key = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class ProfileWriteOutSerializer(ProfileOutSerializer):
    created = serializers.BooleanField(help_text="Whether this request created the profile.")
    attribute_errors = AttributeErrorSerializer(
        many=True,
        help_text="Attributes refused (kept in quarantine); the rest of the update applied.",
    )

    class Meta(ProfileOutSerializer.Meta):
        fields = [*ProfileOutSerializer.Meta.fields, "created", "attribute_errors"]


class OperationSerializer(serializers.Serializer):
    op = serializers.ChoiceField(choices=list(OPERATIONS))
    key = serializers.CharField(max_length=128)
    value = serializers.JSONField(required=False)


class ProfileWriteSerializer(serializers.Serializer):
    attributes = serializers.DictField(
        required=False, help_text="Attributes to set (key -> value)."
    )
    operations = OperationSerializer(
        many=True, required=False, help_text="Operations applied in order after attributes."
    )


class EventOutSerializer(serializers.Serializer):
    message_id = serializers.CharField()
    type = serializers.CharField()  # type: ignore[assignment]
    name = serializers.CharField()
    properties = serializers.DictField()
    context = serializers.DictField()  # type: ignore[assignment]
    timestamp = serializers.DateTimeField()
    original_timestamp = serializers.DateTimeField(allow_null=True)
    received_at = serializers.DateTimeField()
    source = serializers.CharField()  # type: ignore[assignment]
    device_id = serializers.CharField(allow_null=True)


class EventsPageSerializer(serializers.Serializer):
    events = EventOutSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class ErasureOutSerializer(serializers.Serializer):
    erased = serializers.BooleanField()
    profile_id = serializers.UUIDField(allow_null=True)
    already_erased = serializers.BooleanField()
    counts = serializers.DictField(child=serializers.IntegerField())
