"""Key authentication for the APIs.

- write key (public, SDKs): HTTP Basic user name with an empty password, the way Segment SDKs
  send it, or ``Authorization: Bearer <write key>``; it may only send data;
- server key (secret, backends): ``Authorization: Bearer <server key>``; it may also read,
  update, export and erase.

``request.user`` becomes an :class:`AppKey`, ``request.auth`` the :class:`App`: every view
reaches data through ``request.auth`` only, so a key never sees another app's rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from profiles.models import App, hash_server_key

KeyKind = Literal["write", "server"]
SERVER_KEY_PREFIX = "sk_"
WRITE_KEY_PREFIX = "wk_"


@dataclass(frozen=True)
class AppKey:
    """The authenticated caller: which app, and with which kind of key."""

    app: App
    kind: KeyKind
    is_authenticated: bool = True

    @property
    def is_server(self) -> bool:
        return self.kind == "server"


def app_for_key(raw_key: str) -> AppKey | None:
    """The app a key belongs to, or None: one indexed lookup, or none when this process
    looked the key up less than ``APP_KEY_CACHE_SECONDS`` ago (:func:`forget_app_keys`)."""
    if not raw_key or len(raw_key) > 200 or "\x00" in raw_key:
        return None
    if raw_key.startswith(SERVER_KEY_PREFIX):
        app = _app_where("server_key_hash", hash_server_key(raw_key))
        return AppKey(app=app, kind="server") if app else None
    app = _app_where("write_key", raw_key)
    return AppKey(app=app, kind="write") if app else None


def _app_where(column: str, value: str) -> App | None:
    """The app whose ``column`` is ``value``, through this process's ``app_keys`` cache (a
    LocMemCache: each hit is a fresh unpickled App, so a request never changes the cached
    one). Only keys that exist are kept."""
    cache = caches["app_keys"]
    cache_key = hashlib.sha256(f"{column}:{value}".encode()).hexdigest()
    app = cache.get(cache_key)
    if app is None:
        app = App.objects.filter(**{column: value}).first()
        if app is not None:
            cache.set(cache_key, app, timeout=settings.APP_KEY_CACHE_SECONDS)
    return app


def forget_app_keys(**_: Any) -> None:
    """Empty this process's key cache. Connected to App's post_save and post_delete: a key
    rotated or an app deleted is refused at once by the process that made the change. Emptied
    again after the commit, in case a request re-read the old row in between."""
    clear_app_key_cache()
    transaction.on_commit(clear_app_key_cache)


def clear_app_key_cache() -> None:
    caches["app_keys"].clear()


def key_from_header(header: str) -> str | None:
    """The raw key of an Authorization header (Bearer, or Basic with the key as user name)."""
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        return credentials or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise exceptions.AuthenticationFailed("Malformed Basic credentials.") from None
        user, _, _password = decoded.partition(":")
        return user or None
    raise exceptions.AuthenticationFailed(
        "Unsupported Authorization scheme: use Bearer <key> or Basic with the write key as user name."
    )


class KeyAuthentication(BaseAuthentication):
    """Header-based key auth. A missing header leaves the request anonymous (-> 401 later)."""

    def authenticate(self, request: Request) -> tuple[AppKey, App] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        raw_key = key_from_header(header)
        if raw_key is None:
            return None
        app_key = app_for_key(raw_key)
        if app_key is None:
            raise exceptions.AuthenticationFailed("Unknown API key.")
        return app_key, app_key.app

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="pushapp"'


class HasAppKey(BasePermission):
    """Any valid key of an app (write or server)."""

    message = "An API key is required."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.user, AppKey):
            raise exceptions.NotAuthenticated(
                "An API key is required: Authorization: Bearer <key>, or Basic with the write key as user name."
            )
        return True


class HasServerKey(HasAppKey):
    """Only the app's secret server key; a write key is refused with 403."""

    message = "This endpoint needs the server key; a write key may only send data."

    def has_permission(self, request: Request, view: Any) -> bool:
        super().has_permission(request, view)
        assert isinstance(request.user, AppKey)
        return request.user.is_server
