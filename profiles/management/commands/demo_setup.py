"""``manage.py demo_setup``: the demo `make run` serves. Idempotent: creates what is missing
(the "Demo Shop" app, the ``demo`` superuser), simulates traffic only while the app has no
events, and prints where to log in and the app's keys.

The server key is stored hashed, so it cannot be read back on a second run. Rotating it on
every run would break whatever a developer configured with the previous one, so the demo's
server key is kept in clear in a file under ``var/`` (git-ignored, mode 600; a demo key on a
development machine, never a production one). When that file is missing or does not match the
app (another database, a key rotated in the admin), the server key is rotated once with
``app_rotate_keys(write=False, server=True)`` and the new key written to the file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count, Q

from events.models import Event
from profiles.management.commands.simulate_traffic import simulate_or_fail
from profiles.models import App, AppMembership, Device, Profile, ProfileMerge, hash_server_key
from profiles.services import app_create, app_rotate_keys

DEMO_APP_NAME = "Demo Shop"
DEMO_USERNAME = "demo"
DEFAULT_PASSWORD = "pushapp-demo"


def default_key_file() -> Path:
    return Path(os.environ.get("DEMO_KEY_FILE") or settings.BASE_DIR / "var" / "demo-server-key")


class Command(BaseCommand):
    help = "Create the demo app, the demo admin login and demo traffic (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=300, help="simulated people (300)")
        parser.add_argument("--days", type=int, default=30, help="days of history (30)")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--key-file",
            type=Path,
            default=None,
            help="where the demo server key is kept (default: $DEMO_KEY_FILE or var/demo-server-key)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        key_file: Path = options["key_file"] or default_key_file()
        app, server_key, key_note = self._app_and_server_key(key_file)
        password, user_note = self._superuser(app)
        if Event.objects.filter(app=app).exists():
            self.stdout.write(f"{DEMO_APP_NAME!r} already has events: no traffic simulated.")
        else:
            self.stdout.write(
                f"Simulating {options['users']} people over {options['days']} days "
                "through /v1/batch and /api/v1/events ..."
            )
            started = time.monotonic()
            report = simulate_or_fail(app=app, server_key=server_key, options=options)
            self.stdout.write(f"  {report.summary()}")
            self.stdout.write(f"  demo data ready in {time.monotonic() - started:.1f}s")
        self.stdout.write(self._counts(app))
        port = os.environ.get("PORT", "8000")
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("PushApp demo"))
        self.stdout.write(f"  admin:      http://127.0.0.1:{port}/admin/")
        self.stdout.write(f"  login:      {DEMO_USERNAME} / {password}{user_note}")
        self.stdout.write(f"  app:        {app.name} (id {app.pk})")
        self.stdout.write(f"  write key:  {app.write_key}")
        self.stdout.write(f"  server key: {server_key}   ({key_note})")

    def _app_and_server_key(self, key_file: Path) -> tuple[App, str, str]:
        app = App.objects.filter(name=DEMO_APP_NAME).order_by("pk").first()
        if app is None:
            app, keys = app_create(name=DEMO_APP_NAME)
            self.stdout.write(f"Created the app {DEMO_APP_NAME!r} (id {app.pk}).")
            _write_key_file(key_file, keys.server_key)
            return app, keys.server_key, f"new; kept in {key_file}"
        stored = key_file.read_text().strip() if key_file.is_file() else ""
        if stored and hash_server_key(stored) == app.server_key_hash:
            return app, stored, f"from {key_file}"
        # The hash cannot be read back: a usable key needs a new one (the write key stays).
        server_key = app_rotate_keys(app=app, write=False, server=True).server_key
        _write_key_file(key_file, server_key)
        reason = "did not match" if stored else "was missing"
        return (
            app,
            server_key,
            f"rotated just now: {key_file} {reason}; the old key stopped working",
        )

    def _superuser(self, app: App) -> tuple[str, str]:
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USERNAME).first()
        note = ""
        password = os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD
        if user is None:
            user = User.objects.create_superuser(
                username=DEMO_USERNAME, email="demo@example.com", password=password
            )
            self.stdout.write(f"Created the superuser {DEMO_USERNAME!r}.")
        else:
            note = "   (the password set when the user was created; unchanged)"
        AppMembership.objects.get_or_create(
            app=app, user=user, defaults={"role": AppMembership.Role.ADMIN}
        )
        return password, note

    def _counts(self, app: App) -> str:
        profiles = Profile.objects.filter(app=app).aggregate(
            live_guests=Count("pk", filter=Q(kind=Profile.Kind.GUEST, merged_into__isnull=True)),
            live_identified=Count(
                "pk", filter=Q(kind=Profile.Kind.IDENTIFIED, merged_into__isnull=True)
            ),
            tombstones=Count("pk", filter=Q(merged_into__isnull=False)),
        )
        merges = ProfileMerge.objects.filter(app=app).count()
        devices = Device.objects.filter(app=app).count()
        events = Event.objects.filter(app=app).count()
        return (
            f"{app.name}: {profiles['live_guests']} guest and {profiles['live_identified']} "
            f"identified profiles, {profiles['tombstones']} merged into others "
            f"({merges} merges), {devices} devices, {events} events"
        )


def _write_key_file(path: Path, server_key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(server_key + "\n")
    os.chmod(path, 0o600)
