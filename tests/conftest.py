"""Shared fixtures. The suite runs on real PostgreSQL and Redis (make test sets DATABASE_URL
and REDIS_URL); Celery tasks run in-process on commit unless a test starts a real worker."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from django.test import Client

from profiles.models import App
from profiles.services import AppKeys, app_create
from tests.messages import Send


@pytest.fixture(autouse=True)
def _eager_celery(settings: Any) -> Iterator[None]:
    from pushapp.celery import app as celery_app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> Iterator[None]:
    """Each test starts with an empty key cache (a test's apps and keys roll back with it)."""
    from profiles.authentication import clear_app_key_cache

    clear_app_key_cache()
    yield
    clear_app_key_cache()


@dataclass
class ApiApp:
    """An app with its raw keys and helpers to call the APIs like an SDK or a backend."""

    app: App
    keys: AppKeys
    client: Client

    def basic(self, key: str | None = None) -> dict[str, str]:
        token = base64.b64encode(f"{key or self.keys.write_key}:".encode()).decode()
        return {"HTTP_AUTHORIZATION": f"Basic {token}"}

    def bearer(self, key: str | None = None) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {key or self.keys.server_key}"}

    def post(
        self, path: str, body: Any, *, auth: dict[str, str] | None = None, **extra: Any
    ) -> Any:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        headers = self.basic() if auth is None else auth
        kwargs: dict[str, Any] = {"content_type": "application/json", **headers, **extra}
        return self.client.post(path, data=data, **kwargs)

    def segment(self, route: str, body: Any, **extra: Any) -> Any:
        return self.post(f"/v1/{route}", body, **extra)

    def get(self, path: str, *, auth: dict[str, str] | None = None) -> Any:
        return self.client.get(path, **(self.bearer() if auth is None else auth))  # type: ignore[arg-type]


@pytest.fixture
def api_app(db: None) -> ApiApp:
    app, keys = app_create(name="Test app")
    return ApiApp(app=app, keys=keys, client=Client())


@pytest.fixture
def other_app(db: None) -> ApiApp:
    app, keys = app_create(name="Other app")
    return ApiApp(app=app, keys=keys, client=Client())


@pytest.fixture
def send(api_app: ApiApp, django_capture_on_commit_callbacks: Any) -> Send:
    def _send(*messages: dict) -> dict:
        with django_capture_on_commit_callbacks(execute=True):
            response = api_app.segment("batch", {"batch": list(messages)})
        assert response.status_code == 200, response.content
        return response.json()

    return _send
