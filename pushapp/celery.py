import gc
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pushapp.settings")

app = Celery("pushapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_objects(**_: Any) -> None:
    """A pool process's startup objects stay out of the cyclic collector's full passes, as in
    the web workers (pushapp/wsgi.py)."""
    gc.freeze()
