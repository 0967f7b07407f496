"""Settings come from the environment only: checked in fresh interpreters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pushapp.env import ConfigurationError, database_from_url

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST"), "port": db.get("PORT"),
    "user": db.get("USER"), "conn_max_age": db.get("CONN_MAX_AGE"),
    "eager": settings.CELERY_TASK_ALWAYS_EAGER, "broker": settings.CELERY_BROKER_URL,
    "cache": settings.CACHES["default"]["BACKEND"], "debug": settings.DEBUG,
    "hosts": settings.ALLOWED_HOSTS, "secret": settings.SECRET_KEY,
}))
"""


def _settings_with(env: dict[str, str]) -> dict:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}
    }
    clean.update(env, DJANGO_SETTINGS_MODULE="pushapp.settings")
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=clean,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_default_is_sqlite_and_in_process_tasks(tmp_path: Path) -> None:
    got = _settings_with({"DEBUG": "1", "SQLITE_PATH": str(tmp_path / "x.sqlite3")})
    assert got["engine"] == "django.db.backends.sqlite3"
    assert got["name"] == str(tmp_path / "x.sqlite3")
    assert got["eager"] is True
    assert got["broker"] == "memory://"
    assert got["cache"].endswith("LocMemCache")


def test_database_and_redis_urls_configure_postgres_and_celery() -> None:
    got = _settings_with(
        {
            "DEBUG": "0",
            "SECRET_KEY": "s" * 60,
            "DATABASE_URL": "postgres://alice:pw@db.internal:6543/pushapp_prod",
            "REDIS_URL": "redis://cache.internal:6380/2",
            "ALLOWED_HOSTS": "pushapp.example.com, api.example.com",
        }
    )
    assert got["engine"] == "django.db.backends.postgresql"
    assert (got["host"], got["port"], got["user"], got["name"]) == (
        "db.internal",
        "6543",
        "alice",
        "pushapp_prod",
    )
    assert got["conn_max_age"] > 0
    assert got["eager"] is False
    assert got["broker"] == "redis://cache.internal:6380/2"
    assert got["cache"].endswith("RedisCache")
    assert got["debug"] is False
    assert got["hosts"] == ["pushapp.example.com", "api.example.com"]
    assert got["secret"] == "s" * 60


def test_missing_secret_key_without_debug_is_refused() -> None:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "PUSHAPP_ALLOW_DEV_SECRET"}
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, "DEBUG": "0", "DJANGO_SETTINGS_MODULE": "pushapp.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("bad", [{"DEBUG": "maybe"}, {"DATABASE_URL": "mysql://x/y", "DEBUG": "1"}])
def test_bad_environment_values_fail_loudly(bad: dict[str, str]) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DEBUG"}}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **bad, "DJANGO_SETTINGS_MODULE": "pushapp.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ConfigurationError" in result.stderr


def test_production_settings_pass_check_deploy() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"}
    }
    env.update(
        DEBUG="0",
        SECRET_KEY="a-long-random-production-secret-" + "x9Q!" * 12,
        ALLOWED_HOSTS="pushapp.example.com",
        DJANGO_SETTINGS_MODULE="pushapp.settings",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_database_url_options_prepare_statements_with_generic_plans_unless_told() -> None:
    default = database_from_url("postgres://u@h:5432/d", sqlite_path=Path("x"), conn_max_age=60)[
        "OPTIONS"
    ]
    assert default["prepare_threshold"] == 5
    assert "plan_cache_mode=force_generic_plan" in default["options"]
    off = database_from_url(
        "postgres://u@h:5432/d?prepare_threshold=&options=-c%20jit%3Don",
        sqlite_path=Path("x"),
        conn_max_age=60,
    )["OPTIONS"]
    assert off["prepare_threshold"] is None  # behind a transaction-pooling proxy
    assert off["options"] == "-c jit=on"
    with pytest.raises(ConfigurationError, match="prepare_threshold"):
        database_from_url(
            "postgres://u@h/d?prepare_threshold=many", sqlite_path=Path("x"), conn_max_age=60
        )
