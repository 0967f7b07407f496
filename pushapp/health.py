"""/healthz: is this process able to serve? JSON with the database's and Redis's status."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


def _check_database() -> dict[str, object]:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"; the reason is reported
        connection.close_if_unusable_or_obsolete()
        return {"status": "down", "error": type(exc).__name__ + ": " + str(exc).strip()[:200]}
    return {
        "status": "up",
        "vendor": connection.vendor,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _check_redis() -> dict[str, object]:
    if not settings.REDIS_URL:
        return {"status": "not_configured", "detail": "tasks run in-process"}
    import redis

    started = time.perf_counter()
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
        client.close()
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__ + ": " + str(exc).strip()[:200]}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = _check_database()
    redis_status = _check_redis()
    # The database is the system of record: without it nothing can be accepted (503).
    # Redis down only delays background work (the outbox in PostgreSQL keeps it), so 200.
    ok = database["status"] == "up"
    body = {"status": "ok" if ok else "unavailable", "database": database, "redis": redis_status}
    return JsonResponse(body, status=200 if ok else 503)
