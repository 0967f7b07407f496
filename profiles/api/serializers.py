from rest_framework import serializers

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
