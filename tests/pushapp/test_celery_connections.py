"""A real Celery worker keeps its PostgreSQL connection across tasks, as a web worker does
across requests (CONN_MAX_AGE), instead of Celery's default of a new connection per task."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from celery import Celery
from django.db import connection

from tests.processes import celery_process, database_url_for_children, server_env, throwaway_redis

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TASK = "profiles.tasks.sweep_pending_work"  # reads the outbox tables: a task that queries


def worker_backends(application_name: str) -> list[tuple[int, datetime]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        )
        return list(cursor.fetchall())


def run_tasks(producer: Celery, worker: Any, count: int, done_before: int) -> None:
    for _ in range(count):
        producer.send_task(TASK)
    deadline = time.monotonic() + 60
    while worker.log().count("succeeded in") < done_before + count:
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.1)
    time.sleep(0.5)  # past the task's postrun, where Celery would close the connection


def worker_env(redis_url: str, application_name: str, **overrides: str) -> dict[str, str]:
    return server_env(
        DATABASE_URL=f"{database_url_for_children()}?application_name={application_name}",
        REDIS_URL=redis_url,
        **overrides,
    )


def test_a_worker_runs_its_tasks_on_one_connection() -> None:
    name = "pushapp-test-worker-reuse"
    with (
        throwaway_redis() as redis_instance,
        celery_process(worker_env(redis_instance.url, name), concurrency=1) as worker,
    ):
        producer = Celery(broker=redis_instance.url)
        run_tasks(producer, worker, 1, done_before=0)
        first = worker_backends(name)
        assert len(first) == 1, "the worker closed its connection after the task"
        run_tasks(producer, worker, 5, done_before=1)
        assert worker_backends(name) == first


def test_a_worker_still_closes_connections_past_conn_max_age() -> None:
    name = "pushapp-test-worker-max-age"
    with (
        throwaway_redis() as redis_instance,
        celery_process(
            worker_env(redis_instance.url, name, CONN_MAX_AGE="0"), concurrency=1
        ) as worker,
    ):
        producer = Celery(broker=redis_instance.url)
        run_tasks(producer, worker, 3, done_before=0)
        assert worker_backends(name) == []
