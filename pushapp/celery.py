import gc
import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pushapp.settings")

app = Celery("pushapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_objects(**_: Any) -> None:
    """A pool process's startup objects stay out of the cyclic collector's full passes, as in
    the web workers (pushapp/wsgi.py)."""
    gc.freeze()


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(task: Any = None, **_: Any) -> None:
    """Database connections live across tasks as across a web worker's requests: closed when
    broken or older than ``CONN_MAX_AGE``, health-checked before reuse (Django's own
    request-boundary rule). Celery's Django fixup would close them around every task
    (``CELERY_DB_REUSE_MAX``, settings.py, turns that off), and then every merge paid for a
    new PostgreSQL backend and lost its prepared statements (docs/benchmarks.md)."""
    if task is not None and getattr(task.request, "is_eager", False):
        return  # an eager task runs inside its caller's connection and transaction
    from django.db import close_old_connections

    close_old_connections()
