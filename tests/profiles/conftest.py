"""Helpers for identity tests: messages at fixed offsets from T0, sent as Segment batches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from events.models import Event
from profiles.models import Device, Profile
from tests.conftest import ApiApp

T0 = timezone.now().replace(microsecond=0) - timedelta(days=2)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def track(
    device: str | None,
    name: str,
    minutes: float,
    *,
    user: str | None = None,
    mid: str | None = None,
) -> dict:
    message: dict[str, Any] = {
        "type": "track",
        "event": name,
        "timestamp": at(minutes),
        "messageId": mid or f"{device}-{user}-{name}-{minutes}",
    }
    if device:
        message["anonymousId"] = device
    if user:
        message["userId"] = user
    return message


def identify(device: str | None, user: str, minutes: float, traits: dict | None = None) -> dict:
    message: dict[str, Any] = {
        "type": "identify",
        "userId": user,
        "timestamp": at(minutes),
        "messageId": f"id-{device}-{user}-{minutes}",
        "traits": traits or {},
    }
    if device:
        message["anonymousId"] = device
    return message


Send = Callable[..., Any]


@pytest.fixture
def send(api_app: ApiApp, django_capture_on_commit_callbacks: Any) -> Send:
    def _send(*messages: dict) -> dict:
        with django_capture_on_commit_callbacks(execute=True):
            response = api_app.segment("batch", {"batch": list(messages)})
        assert response.status_code == 200, response.content
        return response.json()

    return _send


def profile_of(device_id: str) -> Profile:
    return Device.objects.select_related("profile").get(device_id=device_id).profile


def names(profile: Profile) -> set[str]:
    return set(Event.objects.filter(profile=profile, type="track").values_list("name", flat=True))
