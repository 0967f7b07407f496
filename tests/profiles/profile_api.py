"""Helpers for the profile API tests: calls with the server key, answers read as JSON."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from profiles.models import ProfileField
from profiles.services import profile_field_save
from tests.conftest import ApiApp

IDENTIFY = "/api/v1/identify"


def profile_url(user_id: str, suffix: str = "") -> str:
    return f"/api/v1/profiles/{quote(user_id, safe='')}{suffix}"


def call(
    api_app: ApiApp,
    method: str,
    path: str,
    body: Any = None,
    *,
    auth: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    """``method`` on ``path`` with the server key unless ``auth`` says otherwise."""
    data = b"" if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    headers: dict[str, Any] = api_app.bearer() if auth is None else auth
    return api_app.client.generic(
        method, path, data=data, content_type="application/json", **headers, **extra
    )


def ok(response: Any) -> Any:
    assert response.status_code == 200, (response.status_code, response.content[:500])
    if getattr(response, "streaming", False):
        return orjson.loads(b"".join(response.streaming_content))
    return orjson.loads(response.content)


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = orjson.loads(response.content)
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body  # type: ignore[no-any-return]


def patch(api_app: ApiApp, user_id: str, body: Any) -> Any:
    return call(api_app, "PATCH", profile_url(user_id), body)


def configure(api_app: ApiApp, key: str, field_type: str, **flags: Any) -> ProfileField:
    return profile_field_save(
        profile_field=ProfileField(
            app=api_app.app, key=key, label=key.title(), field_type=field_type, **flags
        )
    )
