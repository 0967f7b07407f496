"""Re-sync recomputes derived data from the raw rows: service, Celery job with progress, and
the management command with its progress bar."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from events.models import Event
from profiles.identity import resync_job_create, resync_run
from profiles.models import BackgroundJob, Device, Profile
from tests.conftest import ApiApp
from tests.messages import Send, identify, profile_of, track

pytestmark = pytest.mark.django_db


def _corrupt(profile: Profile) -> None:
    Profile.objects.filter(pk=profile.pk).update(
        event_count=999, first_seen_at=None, last_seen_at=None
    )


def test_resync_one_profile_fixes_counters_and_stranded_devices(send: Send) -> None:
    send(identify("d1", "ann", 0), track("d1", "A", 1), track("d1", "B", 5))
    ann = Profile.objects.get(user_id="ann")
    truth = Profile.objects.get(pk=ann.pk)
    assert truth.first_seen_at is not None
    _corrupt(ann)
    tombstone = Profile.objects.create(app=ann.app, merged_into=ann)
    Device.objects.create(
        app=ann.app,
        device_id="stranded",
        profile=tombstone,
        binding_changed_at=truth.first_seen_at,
        first_seen_at=truth.first_seen_at,
        last_seen_at=truth.first_seen_at,
    )
    result = resync_run(profile=ann)
    assert result == {"profiles": 2, "updated": 1}
    fixed = Profile.objects.get(pk=ann.pk)
    assert fixed.event_count == Event.objects.filter(profile=ann).count() == 3
    assert (fixed.first_seen_at, fixed.last_seen_at) == (truth.first_seen_at, truth.last_seen_at)
    assert profile_of("stranded") == ann


def test_resync_job_records_progress(
    api_app: ApiApp, send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(track("d1", "A", 0), track("d2", "B", 0), identify("d3", "bo", 0))
    for profile in Profile.objects.all():
        _corrupt(profile)
    with django_capture_on_commit_callbacks(execute=True):
        job = resync_job_create(app=api_app.app)
    job.refresh_from_db()
    assert job.status == BackgroundJob.Status.DONE
    assert (job.progress_done, job.progress_total) == (3, 3)
    assert job.result == {"profiles": 3, "updated": 3}
    assert sorted(Profile.objects.values_list("event_count", flat=True)) == [1, 1, 1]


def test_resync_command_shows_a_progress_bar(api_app: ApiApp, send: Send) -> None:
    send(track("d1", "A", 0), identify("d2", "cy", 0))
    for profile in Profile.objects.all():
        _corrupt(profile)
    out = StringIO()
    call_command("resync", "--app", str(api_app.app.pk), stdout=out)
    printed = out.getvalue()
    assert "100% 2/2" in printed and "#" * 30 in printed
    assert "Re-synced 2 profiles" in printed
    assert set(Profile.objects.values_list("event_count", flat=True)) == {1}
    out = StringIO()
    call_command("resync", "--app", str(api_app.app.pk), "--profile", "cy", stdout=out)
    assert "Re-synced 1 profiles" in out.getvalue()
