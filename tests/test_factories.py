"""Every model has a factory, and each builds a valid row in PostgreSQL."""

from __future__ import annotations

from typing import Any

import factory
import pytest
from django.apps import apps

from tests import factories

pytestmark = pytest.mark.django_db

OURS = ("profiles", "events", "sessions_timeline")


def _factories() -> dict[Any, Any]:
    found: dict[Any, Any] = {}
    for value in vars(factories).values():
        if not (isinstance(value, type) and issubclass(value, factory.Factory)):
            continue
        model = value._meta.model
        if model is not None and model._meta.app_label in OURS:
            found.setdefault(model, value)
    return found


def test_each_model_has_a_factory_that_saves() -> None:
    by_model = _factories()
    models = [model for config in OURS for model in apps.get_app_config(config).get_models()]
    assert set(models) <= set(by_model), {m.__name__ for m in models} - {
        m.__name__ for m in by_model
    }
    for model, model_factory in by_model.items():
        row = model_factory.create()
        assert model.objects.filter(pk=row.pk).exists()
