"""Celery entry points for identity work: thin wrappers around profiles.identity."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def profile_merge_run(merge_id: int) -> None:
    from profiles.identity import merge_run

    merge_run(merge_id=merge_id)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def background_job_run(job_id: int) -> None:
    from profiles.identity import background_job_run as run

    run(job_id=job_id)


@shared_task(acks_late=True)
def sweep_pending_work() -> dict[str, int]:
    """Re-queue merges and jobs that are pending or stuck (Redis outage, killed worker)."""
    from profiles.identity import jobs_sweep, merges_sweep

    return {"merges": merges_sweep(), "jobs": jobs_sweep()}


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def attribute_indexes_sync_task() -> dict[str, list[str]]:
    """Build (concurrently) the expression indexes of configured number/date fields."""
    from profiles.services import attribute_indexes_sync

    return attribute_indexes_sync()
