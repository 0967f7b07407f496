"""Celery entry points for identity work: thin wrappers around profiles.identity."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def profile_merge_run(merge_id: int) -> None:
    from profiles.identity import merge_run

    merge_run(merge_id=merge_id)


@shared_task(acks_late=True)
def sweep_pending_work() -> int:
    """Re-queue merges that are pending or stuck (Redis outage, killed worker)."""
    from profiles.identity import merges_sweep

    return merges_sweep()
