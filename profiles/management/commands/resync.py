import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from profiles.identity import resync_run
from profiles.models import App, Profile


class Command(BaseCommand):
    help = (
        "Recompute derived profile data (counters, first/last seen, device bindings) from raw rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--app", type=int, help="app id: re-sync all its profiles")
        parser.add_argument(
            "--profile", help="a profile's public id or user id (needs --app for a user id)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        app = App.objects.filter(pk=options["app"]).first() if options["app"] else None
        if options["app"] and app is None:
            raise CommandError(f"No app with id {options['app']}")
        profile = None
        if options["profile"]:
            profile = self._profile(options["profile"], app)
        if app is None and profile is None:
            raise CommandError("Give --app and/or --profile")
        result = resync_run(app=app, profile=profile, progress=self._bar)
        self.stdout.write("")
        self.stdout.write(f"Re-synced {result['profiles']} profiles ({result['updated']} live).")

    def _profile(self, ref: str, app: App | None) -> Profile:
        query = Profile.objects.all()
        if app is not None:
            query = query.filter(app=app)
        found = query.filter(public_id=ref).first() if len(ref) == 36 else None
        found = found or (query.filter(user_id=ref).first() if app is not None else None)
        if found is None:
            raise CommandError(f"No profile {ref!r}")
        return found

    def _bar(self, done: int, total: int) -> None:
        width = 30
        filled = width if total == 0 else int(width * done / total)
        percent = 100 if total == 0 else int(100 * done / total)
        self.stdout.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {percent:3d}% {done}/{total}", ending=""
        )
        if hasattr(sys.stdout, "flush"):
            self.stdout.flush()
