"""Web and Celery worker processes move their startup objects out of the cyclic garbage
collector's full passes (gc.freeze), which otherwise walk them all now and then inside a
request (docs/benchmarks.md, /v1/track)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, time
import pushapp.wsgi
started = time.perf_counter()
gc.collect()
print(gc.get_freeze_count(), round((time.perf_counter() - started) * 1000, 1))
"""


def test_the_wsgi_module_freezes_the_loaded_application() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "pushapp.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    frozen, _collect_ms = result.stdout.split()
    # Every view module was imported before the freeze (the URL patterns were resolved).
    assert int(frozen) > 50_000
    assert (
        "events.api.segment"
        in subprocess.run(
            [sys.executable, "-c", "import pushapp.wsgi, sys; print(sorted(sys.modules))"],
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "pushapp.settings"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    )


def test_a_celery_pool_process_freezes_at_start() -> None:
    from celery.signals import worker_process_init

    import pushapp.celery  # noqa: F401  (connects the receiver)

    gc.unfreeze()
    try:
        worker_process_init.send(sender=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
