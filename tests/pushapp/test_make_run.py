"""`make run`'s embedded default (SQLite, no Redis) served by scripts/run.sh, and the demo it
creates (manage.py demo_setup): idempotent, made of real traffic through the ingestion API."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Max, Min
from django.utils import timezone

from events.models import Event
from profiles.demo import _Story
from profiles.models import App, Device, Profile, ProfileMerge, hash_server_key
from tests.processes import ROOT, free_port, http_get, wait_for_http

# What `make pytest` sets for the suite and `make run` would not have.
NOT_IN_MAKE_RUN = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "ALLOWED_HOSTS",
    "DJANGO_SETTINGS_MODULE",
)


def _group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of process group ``pgid``, as "pid command" lines."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'.
            state, _ppid, group = text[text.rindex(")") + 2 :].split()[:3]
            if int(group) == pgid and state != "Z":
                members.append(text[: text.rindex(")") + 1])
    return members


@pytest.mark.slow
def test_run_sh_serves_the_embedded_default_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in NOT_IN_MAKE_RUN}
    env.update(
        DEBUG="1",
        SQLITE_PATH=str(tmp_path / "pushapp.sqlite3"),
        PORT=str(port),
        DEMO_KEY_FILE=str(tmp_path / "demo-server-key"),  # not the developer's var/ file
        VENV=sys.prefix,  # the suite's virtualenv
    )
    log_path = tmp_path / "run.log"
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's Ctrl-C sees it
        )
    try:
        try:
            wait_for_http(f"{base}/healthz", timeout=180, process=process)
        except (TimeoutError, RuntimeError) as error:
            raise AssertionError(f"{error}\n{log_path.read_text()[-5000:]}") from None
        status, _ = http_get(f"{base}/admin/login/")
        assert status == 200
        status, body = http_get(f"{base}/healthz")
        assert status == 200, body
        health = json.loads(body)
        assert health["database"] == {**health["database"], "status": "up", "vendor": "sqlite"}
        assert health["redis"]["status"] == "not_configured"
        output = log_path.read_text()
        assert "demo data ready" in output and "http://127.0.0.1:" in output
        assert (tmp_path / "pushapp.sqlite3").exists()

        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        deadline = time.monotonic() + 30
        process.wait(timeout=30)
        while _group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _group_members(process.pid) == [], log_path.read_text()[-3000:]
    finally:
        if process.poll() is None or _group_members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _counts(app: App) -> dict[str, int]:
    return {
        "apps": App.objects.filter(name="Demo Shop").count(),
        "users": get_user_model().objects.filter(username="demo").count(),
        "profiles": Profile.objects.filter(app=app).count(),
        "devices": Device.objects.filter(app=app).count(),
        "events": Event.objects.filter(app=app).count(),
        "merges": ProfileMerge.objects.filter(app=app).count(),
    }


def _printed_key(output: str, label: str) -> str:
    line = next(line for line in output.splitlines() if line.strip().startswith(label))
    return line.split(":", 1)[1].split()[0]


def test_demo_setup_twice_creates_the_demo_once(db: None, tmp_path: Path) -> None:
    key_file = tmp_path / "demo-server-key"
    first = io.StringIO()
    call_command("demo_setup", users=80, key_file=key_file, stdout=first)
    app = App.objects.get(name="Demo Shop")
    counts = _counts(app)
    server_key = _printed_key(first.getvalue(), "server key:")
    assert hash_server_key(server_key) == app.server_key_hash
    assert _printed_key(first.getvalue(), "write key:") == app.write_key
    assert "http://127.0.0.1:" in first.getvalue() and "demo / " in first.getvalue()
    user = get_user_model().objects.get(username="demo")
    assert user.is_superuser and user.is_staff

    second = io.StringIO()
    call_command("demo_setup", users=80, key_file=key_file, stdout=second)
    assert _counts(app) == counts
    assert "no traffic simulated" in second.getvalue()
    assert _printed_key(second.getvalue(), "server key:") == server_key  # kept, not rotated

    # Without the key file the server key can only be rotated; the data stays as it is.
    key_file.unlink()
    third = io.StringIO()
    call_command("demo_setup", users=80, key_file=key_file, stdout=third)
    app.refresh_from_db()
    rotated = _printed_key(third.getvalue(), "server key:")
    assert rotated != server_key and hash_server_key(rotated) == app.server_key_hash
    assert key_file.read_text().strip() == rotated
    assert _counts(app) == counts

    assert counts["apps"] == counts["users"] == 1
    profiles = Profile.objects.filter(app=app)
    live = profiles.filter(merged_into__isnull=True)
    assert live.filter(kind=Profile.Kind.GUEST).count() > 5
    assert live.filter(kind=Profile.Kind.IDENTIFIED).count() > 5
    tombstones = list(profiles.filter(merged_into__isnull=False))
    assert tombstones
    for tombstone in tombstones:
        assert ProfileMerge.objects.filter(source=tombstone, reason="identify").exists()
    assert counts["profiles"] >= 80 and counts["devices"] >= 80
    assert Device.objects.filter(app=app, push_token__isnull=False).exists()
    assert {"ios", "android"} <= set(
        Device.objects.filter(app=app).values_list("platform", flat=True)
    )
    identified = live.filter(kind=Profile.Kind.IDENTIFIED).first()
    assert identified is not None
    assert {"email", "first_name", "last_name", "phone", "city", "plan"} <= set(
        identified.attributes
    )

    events = Event.objects.filter(app=app)
    assert {"track", "screen", "identify"} <= set(events.values_list("type", flat=True))
    names = set(events.values_list("name", flat=True))
    assert {
        "Application Installed",
        "Application Opened",
        "Application Backgrounded",
        "Product Viewed",
        "Product Added",
        "Order Completed",
        "Home",
        "Product",
    } <= names
    assert events.filter(source="server", name="Invoice Paid", device__isnull=True).exists()
    now = timezone.now()
    bounds = events.aggregate(first=Min("timestamp"), last=Max("timestamp"))
    assert now - timedelta(days=30) <= bounds["first"] < bounds["last"] <= now
    assert not events.filter(original_timestamp__isnull=False).exists()  # none out of range


def test_simulated_traffic_is_deterministic_for_a_seed() -> None:
    now = timezone.now()

    def message_ids(seed: int) -> list[str]:
        story = _Story(rng=random.Random(seed), now=now, days=30, app_name="Demo Shop")
        story.everyone(40)
        return [
            entry.body.get("messageId") or entry.body["message_id"]
            for entry in sorted(story.entries)
        ]

    ids = message_ids(7)
    assert ids == message_ids(7)
    assert len(set(ids)) == len(ids)  # every message has its own id
    assert ids != message_ids(8)
