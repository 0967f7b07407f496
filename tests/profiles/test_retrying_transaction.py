"""profiles.identity.in_retrying_transaction: races are re-run; past the last attempt the
request answers 503 retry_later, and nothing the attempts wrote is kept."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, OperationalError, transaction

from profiles.identity import in_retrying_transaction
from profiles.models import App
from pushapp.api import ApplicationError

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_race_is_run_again_and_then_succeeds() -> None:
    calls: list[int] = []

    def work() -> str:
        calls.append(App.objects.create(name=f"attempt {len(calls)}").pk)
        if len(calls) < 3:
            raise IntegrityError("duplicate key")
        return "done"

    assert in_retrying_transaction(work) == "done"
    assert len(calls) == 3
    # The two failed attempts were rolled back; only the third one's row is kept.
    assert list(App.objects.filter(pk__in=calls).values_list("name", flat=True)) == ["attempt 2"]


def test_still_racing_after_every_attempt_is_a_503_with_retry_after() -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(App.objects.create(name="never kept").pk)
        raise OperationalError("deadlock detected")

    with pytest.raises(ApplicationError) as raised:
        in_retrying_transaction(work, attempts=4)
    assert len(calls) == 4
    error = raised.value
    assert (error.status_code, error.code, error.retry_after) == (503, "retry_later", 1)
    assert not App.objects.filter(pk__in=calls).exists()


def test_inside_an_outer_transaction_the_race_goes_up_unchanged() -> None:
    def work() -> None:
        raise IntegrityError("duplicate key")

    with pytest.raises(IntegrityError), transaction.atomic():
        in_retrying_transaction(work)
