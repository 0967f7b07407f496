"""/healthz reports the database and Redis; 503 when the database is unreachable.

The "down" case runs a PushApp server against a throwaway PostgreSQL on a free port and stops
that instance (never the machine's shared one)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.test import Client

from tests.processes import (
    ROOT,
    http_get,
    running_server,
    server_env,
    throwaway_postgres,
    throwaway_redis,
)


@pytest.mark.django_db
def test_healthz_up_with_database_and_redis() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "up"
    assert body["database"]["vendor"] == "postgresql"
    assert body["redis"]["status"] == "up"


@pytest.mark.slow
def test_healthz_503_when_database_down_and_reports_redis_down() -> None:
    with throwaway_postgres() as postgres, throwaway_redis() as redis_instance:
        env = server_env(DATABASE_URL=postgres.url, REDIS_URL=redis_instance.url, CONN_MAX_AGE="0")
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=180,
        )
        assert migrate.returncode == 0, migrate.stderr
        with running_server(env) as base:
            status, body = http_get(f"{base}/healthz")
            assert status == 200, body
            assert json.loads(body)["redis"]["status"] == "up"
            redis_instance.stop()
            status, body = http_get(f"{base}/healthz")
            assert status == 200  # Redis down only delays background work
            assert json.loads(body)["redis"]["status"] == "down"
            postgres.stop()
            status, body = http_get(f"{base}/healthz")
            assert status == 503
            report = json.loads(body)
            assert report["status"] == "unavailable"
            assert report["database"]["status"] == "down"
            postgres.start()
            status, _ = http_get(f"{base}/healthz")
            assert status == 200
