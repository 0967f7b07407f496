"""The naive DRF baseline: what a first Django REST Framework version of event ingestion looks
like. A default ``ModelSerializer(many=True)`` over Event, validated and saved row by row: per
event, a SELECT for each foreign key it names (app, profile, device), the uniqueness SELECT
that the (app, message_id) constraint gives it, then one INSERT. Mounted only by
bench/urls.py, never by the product; the bench compares PushApp's ingestion path with it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from events.models import Event


class NaiveEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = [
            "id",
            "app",
            "profile",
            "device",
            "session",
            "type",
            "name",
            "properties",
            "context",
            "timestamp",
            "received_at",
            "message_id",
            "source",
        ]


class NaiveEventBatchView(APIView):
    """POST a JSON array of events; no identity resolution, sessions or counters."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        serializer = NaiveEventSerializer(data=request.data, many=True)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            serializer.save()
        return Response({"created": len(serializer.data)}, status=status.HTTP_201_CREATED)
