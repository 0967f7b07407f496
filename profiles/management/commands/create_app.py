import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from profiles.services import app_create


class Command(BaseCommand):
    help = "Create an app and print its write key and (once only) its server key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
        parser.add_argument("--session-timeout", type=int, default=30 * 60, help="seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        app, keys = app_create(
            name=options["name"], session_timeout_seconds=options["session_timeout"]
        )
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": app.pk,
                        "name": app.name,
                        "write_key": keys.write_key,
                        "server_key": keys.server_key,
                    }
                )
            )
            return
        self.stdout.write(f"Created app {app.name!r} (id {app.pk})")
        self.stdout.write(f"  write key:  {keys.write_key}")
        self.stdout.write(f"  server key: {keys.server_key}   (shown once; stored hashed)")
