"""GET .../timeline (server key): a profile's activity, cursor-paginated."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from events.models import Event
from profiles.authentication import AppKey, HasServerKey, KeyAuthentication
from profiles.models import Profile
from profiles.selectors import profile_get_by_public_id, profile_get_by_user_id
from pushapp.api import ApplicationError
from sessions_timeline.selectors import TimelineItem, timeline_page


def _event_json(event: Event) -> dict[str, Any]:
    return {
        "message_id": event.message_id,
        "type": event.type,
        "name": event.name,
        "timestamp": event.timestamp,
        "properties": event.properties,
        "source": event.source,
    }


def item_json(item: TimelineItem) -> dict[str, Any]:
    if item.session is None:
        assert item.event is not None
        return {"kind": "event", **_event_json(item.event)}
    session = item.session
    return {
        "kind": "session",
        "session_id": session.pk,
        "started_at": session.started_at,
        "last_event_at": session.last_event_at,
        "ended_at": session.ended_at,
        "duration_seconds": session.duration_seconds,
        "event_count": session.event_count,
        "screen_count": session.screen_count,
        "app_version": session.app_version,
        "device": {
            "device_id": session.device.device_id,
            "platform": session.device.platform,
            "model": session.device.model,
        },
        "events": [_event_json(event) for event in item.events],
        "more_events": item.more_events,
    }


class TimelineEventSerializer(serializers.Serializer):
    message_id = serializers.CharField()
    type = serializers.CharField()  # type: ignore[assignment]
    name = serializers.CharField()
    timestamp = serializers.DateTimeField()
    properties = serializers.DictField()
    source = serializers.CharField()  # type: ignore[assignment]


class TimelineItemSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="session or event")
    session_id = serializers.IntegerField(required=False)
    started_at = serializers.DateTimeField(required=False)
    last_event_at = serializers.DateTimeField(required=False)
    ended_at = serializers.DateTimeField(required=False, allow_null=True)
    duration_seconds = serializers.FloatField(required=False)
    event_count = serializers.IntegerField(required=False)
    screen_count = serializers.IntegerField(required=False)
    events = TimelineEventSerializer(many=True, required=False)
    more_events = serializers.IntegerField(required=False)
    name = serializers.CharField(required=False)
    timestamp = serializers.DateTimeField(required=False)


class TimelinePageSerializer(serializers.Serializer):
    items = TimelineItemSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


PARAMETERS = [
    OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
    OpenApiParameter("limit", int, description="items per page (1-100, default 20)"),
]


class _TimelineView(APIView):
    authentication_classes = [KeyAuthentication]
    permission_classes = [HasServerKey]

    def page(self, request: Request, profile: Profile) -> Response:
        raw_limit = request.query_params.get("limit", "20")
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ApplicationError("limit must be a number.", code="invalid_limit") from None
        page = timeline_page(
            profile=profile, cursor=request.query_params.get("cursor"), limit=limit
        )
        return Response(
            {"items": [item_json(item) for item in page.items], "next_cursor": page.next_cursor}
        )

    def app_key(self, request: Request) -> AppKey:
        assert isinstance(request.user, AppKey)
        return request.user


class TimelineByUserIdView(_TimelineView):
    @extend_schema(
        parameters=PARAMETERS,
        responses={200: TimelinePageSerializer},
        summary="A profile's timeline by user id",
    )
    def get(self, request: Request, user_id: str) -> Response:
        return self.page(
            request, profile_get_by_user_id(app=self.app_key(request).app, user_id=user_id)
        )


class TimelineByPublicIdView(_TimelineView):
    @extend_schema(
        parameters=PARAMETERS,
        responses={200: TimelinePageSerializer},
        summary="A profile's timeline by public id",
    )
    def get(self, request: Request, public_id: str) -> Response:
        return self.page(
            request, profile_get_by_public_id(app=self.app_key(request).app, public_id=public_id)
        )
