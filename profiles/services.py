"""Writes on apps, memberships and profile fields (identity lives in profiles/identity.py)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from profiles.authentication import SERVER_KEY_PREFIX, WRITE_KEY_PREFIX
from profiles.models import App, ProfileField, hash_server_key

STANDARD_FIELDS: list[tuple[str, str, str, bool]] = [
    # key, label, type, pii
    ("email", "Email", ProfileField.Type.STRING, True),
    ("phone", "Phone", ProfileField.Type.STRING, True),
    ("first_name", "First name", ProfileField.Type.STRING, True),
    ("last_name", "Last name", ProfileField.Type.STRING, True),
    ("name", "Name", ProfileField.Type.STRING, True),
    ("birthday", "Birthday", ProfileField.Type.DATE, True),
    ("gender", "Gender", ProfileField.Type.STRING, False),
    ("city", "City", ProfileField.Type.STRING, False),
    ("country", "Country", ProfileField.Type.STRING, False),
    ("language", "Language", ProfileField.Type.STRING, False),
    ("timezone", "Time zone", ProfileField.Type.STRING, False),
    ("created_at", "Signed up at", ProfileField.Type.DATETIME, False),
]
SEARCHABLE_STANDARD_FIELDS = {"email", "phone"}
SET_ONCE_STANDARD_FIELDS = {"created_at"}


@dataclass(frozen=True)
class AppKeys:
    """Keys as shown once: the server key is never stored in clear."""

    write_key: str
    server_key: str


def _new_write_key() -> str:
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(24)


def _new_server_key() -> str:
    return SERVER_KEY_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def app_create(*, name: str, session_timeout_seconds: int = 30 * 60) -> tuple[App, AppKeys]:
    """Create an app with fresh keys and the standard profile fields."""
    server_key = _new_server_key()
    app = App.objects.create(
        name=name,
        write_key=_new_write_key(),
        server_key_hash=hash_server_key(server_key),
        server_key_prefix=server_key[:10],
        session_timeout_seconds=session_timeout_seconds,
    )
    ProfileField.objects.bulk_create(
        ProfileField(
            app=app,
            key=key,
            label=label,
            field_type=field_type,
            pii=pii,
            searchable=key in SEARCHABLE_STANDARD_FIELDS,
            set_once=key in SET_ONCE_STANDARD_FIELDS,
            display_order=position,
        )
        for position, (key, label, field_type, pii) in enumerate(STANDARD_FIELDS)
    )
    return app, AppKeys(write_key=app.write_key, server_key=server_key)


@transaction.atomic
def app_rotate_keys(*, app: App, write: bool = True, server: bool = True) -> AppKeys:
    """Replace the app's keys; the old ones stop working at once. Returns the new keys
    (the server key only here: it is stored hashed). An unrotated key is returned as ""."""
    server_key = ""
    if write:
        app.write_key = _new_write_key()
    if server:
        server_key = _new_server_key()
        app.server_key_hash = hash_server_key(server_key)
        app.server_key_prefix = server_key[:10]
    app.keys_rotated_at = timezone.now()
    app.save(update_fields=["write_key", "server_key_hash", "server_key_prefix", "keys_rotated_at"])
    return AppKeys(write_key=app.write_key if write else "", server_key=server_key)
