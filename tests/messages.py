"""Messages at fixed offsets from T0 for identity and session tests, and readers of the
resulting rows (the ``send`` fixture that posts them lives in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.utils import timezone

from events.models import Event
from profiles.models import Device, Profile

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


def profile_of(device_id: str) -> Profile:
    return Device.objects.select_related("profile").get(device_id=device_id).profile


def names(profile: Profile) -> set[str]:
    return set(Event.objects.filter(profile=profile, type="track").values_list("name", flat=True))


def session_history(
    send: Send, user: str, events_per_session: int, traits: dict | None = None
) -> Profile:
    """Four sessions of ``events_per_session`` events (two hours apart) on one phone, a
    server-side event after each, large contexts; ``traits`` on the opening identify."""
    context = {"context": {"library": {"name": "analytics-ios"}, "userAgent": "x" * 400}}
    messages: list[dict] = [identify(f"{user}-phone", user, 0, traits)]
    for session in range(4):
        messages += [
            {**track(f"{user}-phone", f"S{session} E{n}", session * 120 + 1 + n / 10), **context}
            for n in range(events_per_session)
        ]
        messages.append(track(None, f"Server {session}", session * 120 + 60, user=user))
    send(*messages)
    return Profile.objects.get(user_id=user)
