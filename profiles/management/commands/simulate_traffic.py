"""``manage.py simulate_traffic --app-id N``: realistic traffic through the real ingestion API
(see :mod:`profiles.demo`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from profiles.demo import MAX_DAYS, SimulationError, simulate
from profiles.models import App, hash_server_key
from profiles.services import app_rotate_keys


def simulate_or_fail(*, app: App, server_key: str, options: dict[str, Any]) -> Any:
    """:func:`profiles.demo.simulate` with the command's ``--users/--days/--seed``; a refusal
    by the ingestion API is the command's error."""
    try:
        return simulate(
            app=app,
            write_key=app.write_key,
            server_key=server_key,
            users=options["users"],
            days=options["days"],
            seed=options["seed"],
        )
    except SimulationError as error:
        raise CommandError(f"The ingestion API refused the simulated traffic:\n{error}") from None


class Command(BaseCommand):
    help = (
        "Send simulated app traffic (SDK messages to /v1/batch, backend events to "
        "/api/v1/events) for the last N days to an app, through the real ingestion path."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--app-id", type=int, required=True)
        parser.add_argument("--users", type=int, default=300, help="simulated people (300)")
        parser.add_argument(
            "--days", type=int, default=30, help=f"history length, 1 to {MAX_DAYS} (30)"
        )
        parser.add_argument("--seed", type=int, default=1, help="same seed, same traffic (1)")
        keys = parser.add_mutually_exclusive_group(required=True)
        keys.add_argument(
            "--server-key", help="the app's server key (stored hashed, so it must be given)"
        )
        keys.add_argument(
            "--rotate-server-key",
            action="store_true",
            help="replace the app's server key with a new one (printed) and use it",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        app = App.objects.filter(pk=options["app_id"]).first()
        if app is None:
            raise CommandError(f"No app with id {options['app_id']}.")
        if not 1 <= options["days"] <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}.")
        if options["users"] < 1:
            raise CommandError("--users must be at least 1.")
        server_key = options["server_key"]
        if options["rotate_server_key"]:
            server_key = app_rotate_keys(app=app, write=False, server=True).server_key
            self.stdout.write(f"Rotated the server key of {app.name!r}: {server_key}")
        elif hash_server_key(server_key) != app.server_key_hash:
            raise CommandError(f"That is not the server key of {app.name!r}.")
        report = simulate_or_fail(app=app, server_key=server_key, options=options)
        self.stdout.write(f"Simulated traffic for {app.name!r}: {report.summary()}")
