"""Admin operations by role, through the admin's pages: what each role sees and may do
(direct URLs to other apps' objects included), the list's query count, each action's
confirmation and effect, and the audit rows."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from events.models import Event
from profiles.models import (
    App,
    AppMembership,
    BackgroundJob,
    Profile,
    ProfileMerge,
    StaffAction,
)
from profiles.services import app_create
from tests.conftest import ApiApp
from tests.factories import UserFactory
from tests.messages import Send, identify, profile_of, track

pytestmark = pytest.mark.django_db

PROFILES = "/admin/profiles/profile/"


def staff(app: App | None, role: str | None, *, superuser: bool = False) -> Client:
    user = UserFactory.create(is_superuser=superuser)
    if app is not None and role is not None:
        AppMembership.objects.create(app=app, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def rows(html: str) -> set[str]:
    """The identities listed in the changelist's rows."""
    return set(re.findall(r'class="field-identity"><a href="[^"]+">([^<]+)</a>', html))


@pytest.fixture
def people(api_app: ApiApp, send: Send) -> dict[str, Profile]:
    send(
        {
            **identify("phone", "alice", 0, {"email": "alice@example.com", "name": "Alice"}),
            "context": {"device": {"type": "ios", "token": "tok-alice"}},
        },
        track("phone", "Opened", 1),
        identify("laptop", "bob", 0, {"email": "bob@example.com"}),
        track("tablet", "Guest browse", 2),
    )
    return {
        "alice": Profile.objects.get(user_id="alice"),
        "bob": Profile.objects.get(user_id="bob"),
        "guest": profile_of("tablet"),
    }


@pytest.fixture
def foreign(other_app: ApiApp) -> Profile:
    return Profile.objects.create(app=other_app.app, user_id="stranger", kind="identified")


def test_each_role_sees_only_its_apps_and_other_apps_objects_are_404(
    api_app: ApiApp, people: dict[str, Profile], foreign: Profile
) -> None:
    for role in ("viewer", "editor", "admin"):
        client = staff(api_app.app, role)
        listing = client.get(PROFILES).content.decode()
        assert "alice" in listing and "stranger" not in listing
        assert client.get(f"{PROFILES}{people['alice'].pk}/change/").status_code == 200
        for suffix in ("change/", "export/", "resync/", "erase/", "attributes/", "history/"):
            assert client.get(f"{PROFILES}{foreign.pk}/{suffix}").status_code == 404, (role, suffix)
        assert client.get(f"/admin/profiles/app/{foreign.app_id}/change/").status_code == 404
        assert (
            client.get(f"{PROFILES}merge/?ids={people['alice'].pk},{foreign.pk}").status_code == 404
        )
    outsider = staff(None, None)  # staff, but a member of no app
    assert outsider.get(PROFILES).status_code == 403
    superuser = staff(None, None, superuser=True)
    listing = superuser.get(PROFILES).content.decode()
    assert "alice" in listing and "stranger" in listing


def test_what_each_role_may_do(api_app: ApiApp, people: dict[str, Profile]) -> None:
    alice = people["alice"]
    expectations = {
        # url suffix: roles allowed
        "export/": {"viewer", "editor", "admin"},
        "resync/": {"editor", "admin"},
        "attributes/": {"editor", "admin"},
        "erase/": {"admin"},
    }
    for role in ("viewer", "editor", "admin"):
        client = staff(api_app.app, role)
        page = client.get(f"{PROFILES}{alice.pk}/change/").content.decode()
        for suffix, allowed in expectations.items():
            status = client.get(f"{PROFILES}{alice.pk}/{suffix}").status_code
            assert (status == 200) == (role in allowed), (role, suffix, status)
            assert (f"{alice.pk}/{suffix}" in page) == (role in allowed), (role, suffix)
        actions = client.get(PROFILES).content.decode()
        assert ("merge_selected" in actions) == (role == "admin")
        assert ("erase_selected" in actions) == (role == "admin")
        assert ("resync_selected" in actions) == (role != "viewer")
        merge_page = client.get(f"{PROFILES}merge/?ids={alice.pk},{people['guest'].pk}")
        assert merge_page.status_code == (200 if role == "admin" else 403)


def test_profile_list_query_count_does_not_grow_with_rows(api_app: ApiApp, send: Send) -> None:
    client = staff(api_app.app, "viewer")
    counts = []
    for batch in (3, 40):
        send(
            *(
                identify(f"dev-{batch}-{n}", f"user-{batch}-{n}", n, {"email": f"u{n}@x.io"})
                for n in range(batch)
            )
        )
        with CaptureQueriesContext(connection) as queries:
            response = client.get(PROFILES)
        assert response.status_code == 200
        counts.append(len(queries))
        assert not any("COUNT(*)" in q["sql"] and "LIMIT" not in q["sql"] for q in queries), [
            q["sql"] for q in queries if "COUNT" in q["sql"]
        ]
    assert counts[0] == counts[1], counts
    assert counts[1] <= 12


def test_search_by_user_id_device_id_push_token_and_email(
    api_app: ApiApp, people: dict[str, Profile]
) -> None:
    client = staff(api_app.app, "viewer")

    def found(term: str) -> set[str]:
        return rows(client.get(PROFILES, {"q": term}).content.decode())

    assert found("alice") == {"alice"}
    assert found("laptop") == {"bob"}  # device id
    assert found("tok-alice") == {"alice"}  # push token
    assert found("tablet") == {"Guest"}
    assert found(str(people["bob"].public_id)) == {"bob"}
    assert found("bob@example.com") == set()  # email is PII: not searchable without the permission
    from django.contrib.auth.models import Permission

    pii_user = UserFactory.create()
    pii_user.user_permissions.add(Permission.objects.get(codename="view_pii"))
    AppMembership.objects.create(app=api_app.app, user=pii_user, role="viewer")
    client.force_login(pii_user)
    assert found("bob@example.com") == {"bob"}


def test_filters_kind_platform_push(
    api_app: ApiApp, people: dict[str, Profile], send: Send
) -> None:
    client = staff(api_app.app, "viewer")

    def listed(query: dict[str, str]) -> set[str]:
        return rows(client.get(PROFILES, query).content.decode())

    assert listed({"kind": "guest"}) == {"Guest"}
    assert listed({"kind": "identified"}) == {"alice", "bob"}
    assert listed({"platform": "ios"}) == {"alice"}
    assert listed({"push": "yes"}) == {"alice"}
    send(identify("tablet", "alice", 5))  # the guest logs in: merged into alice
    assert listed({"kind": "merged"}) == {"Guest"}


def test_merge_from_the_list_confirmation_then_undo(
    api_app: ApiApp, people: dict[str, Profile], django_capture_on_commit_callbacks: Any
) -> None:
    client = staff(api_app.app, "admin")
    alice, guest = people["alice"], people["guest"]
    response = client.post(
        PROFILES, {"action": "merge_selected", "_selected_action": [alice.pk, guest.pk]}
    )
    assert response.status_code == 302 and "/merge/?ids=" in response["Location"]
    confirm = client.get(response["Location"]).content.decode()
    assert "What moves into alice" in confirm  # the identified profile is the default target
    assert "Guest browse" not in confirm and ">1<" in confirm  # one event moves
    assert not ProfileMerge.objects.exists()  # nothing happens before the confirmation
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            f"{PROFILES}merge/",
            {"ids": f"{alice.pk},{guest.pk}", "target": alice.pk, "confirm": "yes"},
        )
    assert done.status_code == 302 and done["Location"].endswith(f"/{alice.pk}/change/")
    merge = ProfileMerge.objects.get()
    assert merge.status == "done" and merge.requested_by is not None
    assert Event.objects.get(name="Guest browse").profile == alice
    audit = StaffAction.objects.get(action="merge")
    assert audit.result == "ok" and audit.object_ids == [guest.pk, alice.pk]
    page = client.get(f"{PROFILES}{alice.pk}/change/").content.decode()
    assert f"/undo-merge/{merge.pk}/" in page
    undo_page = client.get(f"{PROFILES}{alice.pk}/undo-merge/{merge.pk}/")
    assert "Yes, undo the merge" in undo_page.content.decode()
    undone = client.post(f"{PROFILES}{alice.pk}/undo-merge/{merge.pk}/", {"confirm": "yes"})
    assert undone.status_code == 302
    merge.refresh_from_db()
    assert merge.status == "undone"
    assert Event.objects.get(name="Guest browse").profile_id == guest.pk
    assert StaffAction.objects.filter(action="undo_merge", result="ok").count() == 1


def test_two_identified_profiles_need_force(
    api_app: ApiApp, people: dict[str, Profile], django_capture_on_commit_callbacks: Any
) -> None:
    client = staff(api_app.app, "admin")
    ids = f"{people['alice'].pk},{people['bob'].pk}"
    page = client.get(f"{PROFILES}merge/?ids={ids}&target={people['alice'].pk}").content.decode()
    assert "Force the merge of identified profiles" in page
    client.post(f"{PROFILES}merge/", {"ids": ids, "target": people["alice"].pk, "confirm": "yes"})
    assert not ProfileMerge.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"{PROFILES}merge/",
            {"ids": ids, "target": people["alice"].pk, "confirm": "yes", "force": "on"},
        )
    merge = ProfileMerge.objects.get()
    assert merge.forced and merge.source_id == people["bob"].pk


def test_resync_runs_as_a_job_with_status(
    api_app: ApiApp, people: dict[str, Profile], django_capture_on_commit_callbacks: Any
) -> None:
    client = staff(api_app.app, "editor")
    alice = people["alice"]
    Profile.objects.filter(pk=alice.pk).update(event_count=999)
    assert "Yes, re-sync" in client.get(f"{PROFILES}{alice.pk}/resync/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{PROFILES}{alice.pk}/resync/", {"confirm": "yes"})
    job = BackgroundJob.objects.get()
    assert response["Location"].endswith(f"/admin/profiles/backgroundjob/{job.pk}/change/")
    status_page = client.get(response["Location"]).content.decode()
    assert "Re-sync: Done" in status_page and "1 of 1 profiles" in status_page
    assert Profile.objects.get(pk=alice.pk).event_count == 2
    assert StaffAction.objects.filter(action="resync", result="ok").exists()


def test_export_downloads_json_and_is_audited(api_app: ApiApp, people: dict[str, Profile]) -> None:
    client = staff(api_app.app, "viewer")
    response = client.get(f"{PROFILES}{people['alice'].pk}/export/")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert '"user_id":"alice"' in body.replace(" ", "")
    assert "alice@example.com" not in body  # masked: no PII permission
    assert StaffAction.objects.get(action="export").details == {"pii": False}


def test_erase_needs_the_user_id_typed(api_app: ApiApp, people: dict[str, Profile]) -> None:
    client = staff(api_app.app, "admin")
    alice = people["alice"]
    page = client.get(f"{PROFILES}{alice.pk}/erase/").content.decode()
    assert "Type the user id to confirm" in page
    client.post(f"{PROFILES}{alice.pk}/erase/", {"typed": "bob"})
    assert Profile.objects.filter(pk=alice.pk).exists()
    response = client.post(f"{PROFILES}{alice.pk}/erase/", {"typed": "alice"})
    assert response.status_code == 302
    assert not Profile.objects.filter(pk=alice.pk).exists()
    assert not Event.objects.filter(profile_id=alice.pk).exists()
    audit = StaffAction.objects.get(action="erase")
    assert audit.result == "ok" and audit.object_ids == [alice.pk]


def test_editor_edits_attributes(api_app: ApiApp, people: dict[str, Profile]) -> None:
    client = staff(api_app.app, "editor")
    alice = people["alice"]
    client.post(
        f"{PROFILES}{alice.pk}/attributes/", {"key": "plan", "op": "set", "value": '"gold"'}
    )
    assert Profile.objects.get(pk=alice.pk).attributes["plan"] == "gold"
    client.post(f"{PROFILES}{alice.pk}/attributes/", {"key": "name", "op": "unset"})
    assert "name" not in Profile.objects.get(pk=alice.pk).attributes
    assert StaffAction.objects.filter(action="edit_attributes", result="ok").count() == 2


def test_audit_log_is_readable_by_admins_and_editable_by_nobody(
    api_app: ApiApp, people: dict[str, Profile]
) -> None:
    admin_client = staff(api_app.app, "admin")
    admin_client.get(f"{PROFILES}{people['alice'].pk}/export/")
    entry = StaffAction.objects.get()
    assert admin_client.get("/admin/profiles/staffaction/").status_code == 200
    detail = admin_client.get(f"/admin/profiles/staffaction/{entry.pk}/change/").content.decode()
    assert entry.username in detail
    assert 'name="_save"' not in detail and 'name="_continue"' not in detail  # read-only
    assert (
        admin_client.post(
            f"/admin/profiles/staffaction/{entry.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    superuser = staff(None, None, superuser=True)
    assert (
        superuser.post(
            f"/admin/profiles/staffaction/{entry.pk}/change/", {"action": "x"}
        ).status_code
        == 403
    )
    assert (
        superuser.post(
            f"/admin/profiles/staffaction/{entry.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert StaffAction.objects.filter(pk=entry.pk).exists()
    assert staff(api_app.app, "viewer").get("/admin/profiles/staffaction/").status_code == 403


def test_only_app_admins_rotate_keys(api_app: ApiApp) -> None:
    editor = staff(api_app.app, "editor")
    old = App.objects.get(pk=api_app.app.pk).write_key
    editor.post(
        "/admin/profiles/app/", {"action": "rotate_keys", "_selected_action": [api_app.app.pk]}
    )
    assert App.objects.get(pk=api_app.app.pk).write_key == old
    admin_client = staff(api_app.app, "admin")
    admin_client.post(
        "/admin/profiles/app/", {"action": "rotate_keys", "_selected_action": [api_app.app.pk]}
    )
    assert App.objects.get(pk=api_app.app.pk).write_key != old
    assert StaffAction.objects.get(action="rotate_keys").result == "ok"
    _, keys = app_create(name="Another")
    assert keys.write_key


def test_event_and_merge_pages_mask_pii_without_the_permission(
    api_app: ApiApp, people: dict[str, Profile], send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        send(identify("tablet", "alice", 5))  # merges the guest into alice
    merge = ProfileMerge.objects.get()
    ProfileMerge.objects.filter(pk=merge.pk).update(
        source_snapshot={**merge.source_snapshot, "attributes": {"email": "guest@example.com"}}
    )
    event = Event.objects.get(
        type="identify", profile=people["alice"], properties__email="alice@example.com"
    )
    viewer = staff(api_app.app, "viewer")
    event_page = viewer.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    merge_page = viewer.get(f"/admin/profiles/profilemerge/{merge.pk}/change/").content.decode()
    assert "alice@example.com" not in event_page and "PII masked" in event_page
    assert "guest@example.com" not in merge_page and "PII masked" in merge_page
    superuser = staff(None, None, superuser=True)
    assert (
        "alice@example.com"
        in superuser.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    )
