"""PushApp settings: one module, configured only by environment variables (see README.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pushapp.env import database_from_url, env_bool, env_int, env_list

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)
_DEV_SECRET = "dev-insecure-secret-key-change-me-in-production-0123456789abcdef"
SECRET_KEY = os.environ.get("SECRET_KEY") or _DEV_SECRET
if SECRET_KEY == _DEV_SECRET and not DEBUG and os.environ.get("PUSHAPP_ALLOW_DEV_SECRET") != "1":
    # Without DEBUG a real secret is required, except where make run / the tests say otherwise.
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "profiles",
    "events",
    "sessions_timeline",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pushapp.urls"
WSGI_APPLICATION = "pushapp.wsgi.application"
ASGI_APPLICATION = "pushapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASES = {
    "default": database_from_url(
        DATABASE_URL,
        sqlite_path=Path(os.environ.get("SQLITE_PATH", BASE_DIR / "var" / "pushapp.sqlite3")),
        conn_max_age=env_int("CONN_MAX_AGE", 600),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "pushapp",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Each process's own cache of the app of a key (profiles/authentication.py): never Redis, so
# that a request authenticates without a round trip. Entries expire after
# APP_KEY_CACHE_SECONDS; at most 1,000 are kept (a flood of keys cannot grow it).
CACHES["app_keys"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "pushapp-app-keys",
    "OPTIONS": {"MAX_ENTRIES": 1000},
}

# Celery: with REDIS_URL, Redis is the broker; without it, tasks run in-process (eagerly).
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fixup closes the database connections before and after every task unless
# this is set; pushapp/celery.py applies CONN_MAX_AGE and the health check instead. Celery
# still closes them every CELERY_DB_REUSE_MAX tasks.
CELERY_DB_REUSE_MAX = 10_000
# A short connect timeout: the outbox in PostgreSQL (not the broker) is the truth about
# pending work, so a request never waits long on an unreachable Redis.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "socket_connect_timeout": 2}
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BEAT_SCHEDULE = {
    "profiles-sweep-pending-work": {
        "task": "profiles.tasks.sweep_pending_work",
        "schedule": env_int("SWEEP_INTERVAL_SECONDS", 30),
    },
}

# Merges move events in batches of MERGE_BATCH_SIZE, pausing MERGE_BATCH_PAUSE_SECONDS between
# batches (a throttle for a busy database). The sweeper re-queues merges and jobs pending for
# longer than MERGE_PENDING_GRACE_SECONDS or running without a heartbeat for
# MERGE_STUCK_AFTER_SECONDS.
MERGE_BATCH_SIZE = env_int("MERGE_BATCH_SIZE", 5000)
MERGE_BATCH_PAUSE_SECONDS = float(os.environ.get("MERGE_BATCH_PAUSE_SECONDS") or 0)
MERGE_PENDING_GRACE_SECONDS = env_int("MERGE_PENDING_GRACE_SECONDS", 20)
MERGE_STUCK_AFTER_SECONDS = env_int("MERGE_STUCK_AFTER_SECONDS", 300)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "var" / "static"))

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["pushapp.api.OrjsonRenderer"],
    "DEFAULT_PARSER_CLASSES": ["pushapp.api.OrjsonParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "EXCEPTION_HANDLER": "pushapp.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PushApp Users & Data API",
    "DESCRIPTION": "Segment-compatible tracking API and the native PushApp API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from our own static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Ingestion limits (Segment's): per message, per request, messages per batch.
INGEST_MAX_MESSAGE_BYTES = 32 * 1024
INGEST_MAX_REQUEST_BYTES = 500 * 1024
INGEST_MAX_BATCH_MESSAGES = 2500
DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
# Each web process keeps the app of a key it has seen for this long (one query less on every
# API request): a key rotated or an app deleted elsewhere is refused by every process within
# this time, by the process that made the change at once. 0 turns the cache off.
APP_KEY_CACHE_SECONDS = env_int("APP_KEY_CACHE_SECONDS", 5)

# Production hardening: on unless DEBUG; each can be overridden for a TLS-terminating proxy.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
