"""Settings of the bench server: PushApp's own settings plus a URL module that also mounts the
naive DRF baseline (bench/naive_view.py). Used only by bench/run.sh's gunicorn, Celery worker
and in-process measurements; never by the product."""

from pushapp.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
