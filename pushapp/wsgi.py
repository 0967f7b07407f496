"""The WSGI application (gunicorn: ``pushapp.wsgi:application``)."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pushapp.settings")
application = get_wsgi_application()

# Import every view now, then take the ~100,000 objects of a loaded worker (modules, classes,
# URL patterns, settings) out of the cyclic garbage collector's reach. They live as long as
# the process, yet each full collection walked them all: ~25 ms, now and then inside a
# request, a stall in /v1/track's p99 (docs/benchmarks.md). Collections now walk only what
# requests allocate.
get_resolver().url_patterns  # noqa: B018
gc.freeze()
