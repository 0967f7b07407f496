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
from dataclasses import dataclass
from typing import Any, Literal

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
    """The app a key belongs to, or None. One indexed lookup."""
    if not raw_key or len(raw_key) > 200 or "\x00" in raw_key:
        return None
    if raw_key.startswith(SERVER_KEY_PREFIX):
        app = App.objects.filter(server_key_hash=hash_server_key(raw_key)).first()
        return AppKey(app=app, kind="server") if app else None
    app = App.objects.filter(write_key=raw_key).first()
    return AppKey(app=app, kind="write") if app else None


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
