"""Key authentication: right key, wrong key, another app's key, rotated key, write key on a
server endpoint. Through HTTP, as SDKs and backends call."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from profiles.authentication import app_for_key, clear_app_key_cache
from profiles.models import App, Profile, hash_server_key
from profiles.services import app_rotate_keys
from tests.conftest import ApiApp

pytestmark = pytest.mark.django_db

TRACK = {"anonymousId": "anon-1", "event": "Opened"}


def test_write_key_as_basic_user_name_is_accepted(api_app: ApiApp) -> None:
    response = api_app.segment("track", TRACK)
    assert response.status_code == 200, response.content
    assert response.json()["success"] is True


def test_write_key_as_bearer_token_is_accepted(api_app: ApiApp) -> None:
    response = api_app.segment("track", TRACK, auth=api_app.bearer(api_app.keys.write_key))
    assert response.status_code == 200


def test_missing_key_is_401_json(api_app: ApiApp) -> None:
    response = api_app.segment("track", TRACK, auth={})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    native = api_app.post("/api/v1/events", {"events": []}, auth={})
    assert native.status_code == 401
    assert native.json()["code"] == "unauthorized"


def test_unknown_key_is_401(api_app: ApiApp) -> None:
    for auth in (api_app.basic("wk_nope"), api_app.bearer("sk_nope")):
        response = api_app.get("/api/v1/profiles/anyone", auth=auth)
        assert response.status_code == 401
        assert response.json() == {
            "code": "unauthorized",
            "message": "Unknown API key.",
            "details": None,
        }


def test_write_key_on_server_endpoint_is_403(api_app: ApiApp) -> None:
    Profile.objects.create(app=api_app.app, user_id="u1", kind="identified")
    response = api_app.get("/api/v1/profiles/u1", auth=api_app.bearer(api_app.keys.write_key))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert api_app.get("/api/v1/profiles/u1").status_code == 200


def test_key_only_reaches_its_own_app(api_app: ApiApp, other_app: ApiApp) -> None:
    Profile.objects.create(app=other_app.app, user_id="theirs", kind="identified")
    assert api_app.get("/api/v1/profiles/theirs").status_code == 404
    assert other_app.get("/api/v1/profiles/theirs").status_code == 200
    # Data sent with one app's key lands in that app only.
    assert other_app.segment("identify", {"userId": "mine", "anonymousId": "a"}).status_code == 200
    assert Profile.objects.get(user_id="mine").app == other_app.app
    assert api_app.get("/api/v1/profiles/mine").status_code == 404


def test_rotated_keys_stop_working_and_new_ones_work(api_app: ApiApp) -> None:
    old = api_app.keys
    new = app_rotate_keys(app=api_app.app)
    assert api_app.segment("track", TRACK, auth=api_app.basic(old.write_key)).status_code == 401
    assert api_app.get("/api/v1/profiles/x", auth=api_app.bearer(old.server_key)).status_code == 401
    assert api_app.segment("track", TRACK, auth=api_app.basic(new.write_key)).status_code == 200
    assert api_app.get("/api/v1/profiles/x", auth=api_app.bearer(new.server_key)).status_code == 404


def test_a_known_key_is_looked_up_once_per_cache_period(api_app: ApiApp, settings: Any) -> None:
    """The app of a key is kept by the process for APP_KEY_CACHE_SECONDS; with 0 it is looked
    up on every request."""

    def app_lookups() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api_app.segment("track", TRACK).status_code == 200
        return sum('FROM "profiles_app"' in query["sql"] for query in queries.captured_queries)

    assert app_lookups() == 1
    assert app_lookups() == 0
    settings.APP_KEY_CACHE_SECONDS = 0
    clear_app_key_cache()
    assert [app_lookups(), app_lookups()] == [1, 1]


def test_a_key_changed_behind_the_cache_is_refused_once_the_period_ends(
    api_app: ApiApp, settings: Any
) -> None:
    """Another process rotating the key (here: an UPDATE this process's signals never see)
    is noticed when the cached entry expires."""
    settings.APP_KEY_CACHE_SECONDS = 1
    assert api_app.segment("track", TRACK).status_code == 200
    App.objects.filter(pk=api_app.app.pk).update(write_key="wk_elsewhere")
    assert api_app.segment("track", TRACK).status_code == 200  # still cached
    time.sleep(1.1)
    assert api_app.segment("track", TRACK).status_code == 401


def test_unknown_keys_are_not_cached(api_app: ApiApp) -> None:
    for n in range(50):
        assert api_app.segment("track", TRACK, auth=api_app.basic(f"wk_nope{n}")).status_code == 401
    assert api_app.segment("track", TRACK).status_code == 200
    assert len(caches["app_keys"]._cache) == 1  # type: ignore[attr-defined]


def test_the_cached_app_is_not_shared_with_a_request(api_app: ApiApp) -> None:
    first = app_for_key(api_app.keys.write_key)
    assert first is not None
    first.app.name = "changed by a request"
    second = app_for_key(api_app.keys.write_key)
    assert second is not None and second.app.name == api_app.app.name


def test_server_key_is_stored_hashed(api_app: ApiApp) -> None:
    app = App.objects.get(pk=api_app.app.pk)
    assert api_app.keys.server_key not in {app.server_key_hash, app.write_key}
    assert app.server_key_hash == hash_server_key(api_app.keys.server_key)


def test_malformed_basic_header_is_401(api_app: ApiApp) -> None:
    response = api_app.segment("track", TRACK, auth={"HTTP_AUTHORIZATION": "Basic !!!notbase64"})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_create_app_json(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("create_app", "Shop", "--json")
    printed = json.loads(capsys.readouterr().out)
    app = App.objects.get(pk=printed["id"])
    assert printed["name"] == "Shop" == app.name
    assert printed["write_key"] == app.write_key
    assert hash_server_key(printed["server_key"]) == app.server_key_hash
    assert app.fields.filter(key="email", pii=True).exists()


def test_profile_by_public_id(api_app: ApiApp) -> None:
    profile = Profile.objects.create(app=api_app.app)
    response = api_app.get(f"/api/v1/profiles/by-id/{profile.public_id}")
    assert response.status_code == 200
    assert response.json()["kind"] == "guest"
    assert api_app.get(f"/api/v1/profiles/by-id/{uuid.uuid4()}").status_code == 404
    assert api_app.get("/api/v1/profiles/by-id/not-a-uuid").status_code == 404
