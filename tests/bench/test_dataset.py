"""The benchmark's dataset generator keeps up with the schema: a tiny dataset builds into a
throwaway database with COPY and passes its own consistency checks (bench/dataset.py
--verify). The generator writes rows column by column, so a new NOT NULL column the generator
does not know fails here, not at the start of a 30-minute benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _admin_conninfo() -> str:
    return "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def test_a_small_dataset_builds_and_verifies() -> None:
    name = f"pushapp_bench_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "0",
    }
    env.pop("TEST_DATABASE_NAME", None)
    try:
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert migrate.returncode == 0, migrate.stderr
        command = [
            sys.executable,
            "bench/dataset.py",
            "--profiles",
            "400",
            "--events",
            "4000",
            "--whale-events",
            "1000",
            "--workers",
            "1",
        ]
        build = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-4000:]
        check = subprocess.run(
            [*command, "--verify"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-4000:]
        output = check.stdout + check.stderr
        assert "reusing the dataset" in output
        assert "verify: 0 " in output and "verify: 1" not in output
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM profiles_profile),"
                " (SELECT count(*) FROM events_event),"
                " (SELECT count(*) FROM profiles_profilemerge WHERE status = 'done')"
            ).fetchone()
        assert counts is not None
        profiles, events, merges = counts
        assert profiles >= 400 and events >= 4000 and merges >= 1
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
