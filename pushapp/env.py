"""Reading settings from the environment (12-factor): the only place configuration comes from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


class ConfigurationError(Exception):
    """An environment variable holds a value PushApp cannot use."""


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str | None, *, sqlite_path: Path, conn_max_age: int) -> dict[str, Any]:
    """Django DATABASES['default'] from DATABASE_URL; no URL means the embedded SQLite file."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(sqlite_path),
            # Ingestion writes in one transaction per request; IMMEDIATE avoids SQLite's
            # "database is locked" upgrade deadlock between the dev server's threads.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    parts = urlsplit(url)
    if parts.scheme in {"sqlite", "sqlite3"}:
        path = unquote(parts.path)
        # sqlite:////abs/path.db -> /abs/path.db ; sqlite:///relative.db -> relative.db
        name = path[1:] if path.startswith("//") else (path.lstrip("/") or str(sqlite_path))
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ConfigurationError(
            f"DATABASE_URL scheme {parts.scheme!r} is not supported (use postgres:// or sqlite://)"
        )
    options: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    # PushApp's queries are short index scans; JIT compilation only adds milliseconds to them
    # (docs/benchmarks.md). Prepared statements (below) run their generic plan instead of
    # being planned again at each execution (~0.06 ms each): the only prepared ones are the
    # ingestion path's (pushapp.db.binary_cursor), index lookups and writes by key whose
    # generic plans are the custom ones. A URL's own ?options=... wins.
    options.setdefault("options", "-c jit=off -c plan_cache_mode=force_generic_plan")
    # psycopg prepares a statement it has run this many times on a connection, so PostgreSQL
    # parses and plans it once: the ingestion path's statements bound server-side
    # (pushapp.db.binary_cursor), whose texts do not depend on the batch. Django turns this
    # off by default for transaction-pooling proxies (pgbouncer before 1.21); with one,
    # put prepare_threshold= (empty: off) in the URL.
    threshold = options.pop("prepare_threshold", "5")
    try:
        options["prepare_threshold"] = int(threshold) if threshold != "" else None
    except ValueError as exc:
        raise ConfigurationError(
            f"prepare_threshold in DATABASE_URL must be an integer, got {threshold!r}"
        ) from exc
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        # Persistent connections: a gunicorn sync worker keeps one connection open between
        # requests (health-checked), which saves the ~3 ms connect on every request.
        "CONN_MAX_AGE": conn_max_age,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
        "TEST": {"NAME": os.environ.get("TEST_DATABASE_NAME") or None},
    }
