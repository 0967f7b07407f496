"""PII in the admin, read as HTML: staff without profiles.view_pii see masked values on the
profile page, the profile list and its search results, the export and the quarantine;
with the permission (or as superusers) they see them in clear. And the field configuration:
adding fields, promoting discovered ones."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from profiles.models import (
    App,
    AppMembership,
    DiscoveredField,
    Profile,
    ProfileField,
    QuarantinedAttribute,
)
from profiles.selectors import mask_value, profile_attributes_for_display
from tests.conftest import ApiApp
from tests.factories import UserFactory
from tests.messages import Send, identify

pytestmark = pytest.mark.django_db

EMAIL = "ada.lovelace@example.com"
MASKED = "a***@example.com"


def _staff(*codenames: str, superuser: bool = False) -> Client:
    """A staff member of every app here: an admin where the codenames change things, else a
    viewer (access comes from the membership; PII from the view_pii permission)."""
    user = UserFactory.create(is_superuser=superuser)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    changes = any(code.split("_")[0] in {"add", "change", "delete"} for code in codenames)
    role = AppMembership.Role.ADMIN if changes else AppMembership.Role.VIEWER
    AppMembership.objects.bulk_create(
        AppMembership(app=app, user=user, role=role) for app in App.objects.all()
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def ada(api_app: ApiApp, send: Send) -> Profile:
    send(
        identify(
            "phone",
            "u-42",
            0,
            {
                "email": EMAIL,
                "firstName": "Ada",
                "city": "London",
                "birthday": "not a date",
                "plan": "pro",
            },
        )
    )
    return Profile.objects.get(user_id="u-42")


VIEWER = ("view_profile", "view_quarantinedattribute")


def _streamed(response: Any) -> Any:
    assert response.status_code == 200
    return orjson.loads(b"".join(response.streaming_content))


def _html(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_staff_without_the_permission_see_masked_pii(ada: Profile) -> None:
    staff = _staff(*VIEWER)
    page = _html(staff, f"/admin/profiles/profile/{ada.pk}/change/")
    assert MASKED in page and "•••" in page  # email and first name
    assert EMAIL not in page and ">Ada<" not in page
    assert "London" in page and "pro" in page  # not PII
    listing = _html(staff, "/admin/profiles/profile/")
    assert MASKED in listing and EMAIL not in listing
    search = _html(staff, "/admin/profiles/profile/?q=u-42")
    assert MASKED in search and EMAIL not in search
    # Searching by a PII value finds nothing for them (no probing of PII).
    assert "u-42" not in _html(staff, f"/admin/profiles/profile/?q={EMAIL}")
    export = staff.get(f"/admin/profiles/profile/{ada.pk}/export/")
    document = _streamed(export)
    assert document["pii_masked"] is True
    assert document["attributes"]["email"] == MASKED
    assert document["attributes"]["first_name"] == "•••"
    identify_event = next(e for e in document["events"] if e["type"] == "identify")
    assert identify_event["properties"]["email"] == MASKED
    assert EMAIL.encode() not in orjson.dumps(document)


def test_staff_with_the_permission_and_superusers_see_pii(ada: Profile) -> None:
    for staff in (_staff(*VIEWER, "view_pii"), _staff(superuser=True)):
        page = _html(staff, f"/admin/profiles/profile/{ada.pk}/change/")
        assert EMAIL in page and MASKED not in page and "Ada" in page
        assert EMAIL in _html(staff, "/admin/profiles/profile/")
        assert "u-42" in _html(staff, f"/admin/profiles/profile/?q={EMAIL}")  # search by email
        export = staff.get(f"/admin/profiles/profile/{ada.pk}/export/")
        document = _streamed(export)
        assert document["pii_masked"] is False and document["attributes"]["email"] == EMAIL


def test_the_export_action_downloads_one_profile(ada: Profile) -> None:
    staff = _staff(*VIEWER)
    response = staff.post(
        "/admin/profiles/profile/",
        {"action": "export_json", "_selected_action": [str(ada.pk)]},
    )
    assert response.status_code == 200
    document = _streamed(response)
    assert document["profile"]["user_id"] == "u-42"
    assert document["attributes"]["email"] == MASKED


def test_quarantine_shows_refused_values_masked_when_pii(ada: Profile) -> None:
    # birthday is a PII standard field: its refused value is masked too.
    row = QuarantinedAttribute.objects.get(key="birthday")
    staff = _staff(*VIEWER)
    listing = _html(staff, "/admin/profiles/quarantinedattribute/")
    assert "birthday" in listing and "not a date" not in listing and "•••" in listing
    detail = _html(staff, f"/admin/profiles/quarantinedattribute/{row.pk}/change/")
    assert "not a date" not in detail and "invalid_value" in detail
    clear = _staff(*VIEWER, "view_pii")
    assert "not a date" in _html(clear, "/admin/profiles/quarantinedattribute/")
    assert "not a date" in _html(clear, f"/admin/profiles/quarantinedattribute/{row.pk}/change/")


def test_the_display_selector_for_the_profile_page(ada: Profile) -> None:
    configured, custom = profile_attributes_for_display(profile=ada, can_see_pii=False)
    shown = {field.key: value for field, value in configured}
    assert [field.key for field, _ in configured][:3] == ["email", "phone", "first_name"]
    assert shown["email"] == MASKED and shown["first_name"] == "•••" and shown["city"] == "London"
    assert shown["phone"] == ""  # unset
    assert custom == [("plan", "pro")]
    configured, _ = profile_attributes_for_display(profile=ada, can_see_pii=True)
    assert {f.key: v for f, v in configured}["email"] == EMAIL
    assert mask_value("+44 20 7946 0958") == "•••" and mask_value(None) == ""


def test_staff_add_a_field_in_the_admin(api_app: ApiApp) -> None:
    staff = _staff(superuser=True)
    response = staff.post(
        "/admin/profiles/profilefield/add/",
        {
            "app": str(api_app.app.pk),
            "key": "plan_tier",
            "label": "Plan tier",
            "field_type": "number",
            "description": "",
            "display_order": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    field = ProfileField.objects.get(app=api_app.app, key="plan_tier")
    last = ProfileField.objects.get(app=api_app.app, key="created_at")
    assert field.field_type == "number" and field.display_order == last.display_order + 1
    too_long = staff.post(
        "/admin/profiles/profilefield/add/",
        {"app": str(api_app.app.pk), "key": "k" * 129, "label": "x", "field_type": "string"},
    )
    assert too_long.status_code == 200 and not ProfileField.objects.filter(label="x").exists()
    assert "plan_tier" in _html(staff, "/admin/profiles/profilefield/")


def test_staff_promote_discovered_fields_choosing_their_type(
    api_app: ApiApp, send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(identify("d1", "u-1", 0, {"seats": 3, "nickname": "ace"}))
    seats = DiscoveredField.objects.get(app=api_app.app, key="seats")
    nickname = DiscoveredField.objects.get(app=api_app.app, key="nickname")
    staff = _staff(superuser=True)
    changelist = "/admin/profiles/discoveredfield/"
    assert "seats" in _html(staff, changelist)
    selected = {"action": "promote", "_selected_action": [str(seats.pk), str(nickname.pk)]}
    page = staff.post(changelist, selected)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Promote 2 fields" in html
    assert f'name="f{seats.pk}-field_type"' in html
    assert not ProfileField.objects.filter(key__in=["seats", "nickname"]).exists()
    done = staff.post(
        changelist,
        {
            **selected,
            "confirm": "yes",
            f"f{seats.pk}-field_type": "number",
            f"f{seats.pk}-label": "Seats",
            f"f{nickname.pk}-field_type": "string",
            f"f{nickname.pk}-label": "",
            f"f{nickname.pk}-pii": "on",
        },
    )
    assert done.status_code == 302
    fields = {f.key: f for f in ProfileField.objects.filter(key__in=["seats", "nickname"])}
    assert fields["seats"].field_type == "number" and not fields["seats"].pii
    assert fields["nickname"].pii and fields["nickname"].label == "Nickname"
    assert not DiscoveredField.objects.filter(app=api_app.app).exists()
    # Promoted as PII: masked for staff without the permission from now on.
    ada = Profile.objects.get(user_id="u-1")
    configured, _ = profile_attributes_for_display(profile=ada, can_see_pii=False)
    assert {f.key: v for f, v in configured}["nickname"] == "•••"
