"""The customer profile page (the Profile change view in the admin), read as HTML."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from profiles.models import App, AppMembership, Profile
from tests.conftest import ApiApp
from tests.factories import UserFactory
from tests.messages import Send, identify, profile_of, session_history, track

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_superuser=True))
    return client


def page(client: Client, profile: Profile, query: str = "") -> str:
    response = client.get(f"/admin/profiles/profile/{profile.pk}/change/{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_profile_page_shows_identity_fields_devices_timeline_and_chart(
    staff_client: Client, send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(
        {
            **identify(
                "phone",
                "ada@42",
                0,
                {"email": "ada@example.com", "firstName": "Ada", "plan": "pro"},
            ),
            "context": {
                "device": {"type": "ios", "model": "iPhone16,2", "token": "tok"},
                "app": {"version": "2.0"},
            },
        },
        {**track("phone", "Product Viewed", 1), "properties": {"sku": "A-1", "price": 9}},
        track("phone", "Application Backgrounded", 2),
        track(None, "Invoice Paid", 300, user="ada@42"),
    )
    send(track("tablet", "Guest browse", 5))
    with django_capture_on_commit_callbacks(execute=True):
        send(identify("tablet", "ada@42", 400))
    ada = Profile.objects.get(user_id="ada@42")
    html = page(staff_client, ada)
    assert 'class="pp-identity">ada@42<' in html
    assert "Identified" in html
    assert re.search(r"First name</th><td>Ada<", html)
    assert re.search(r"plan</th><td>pro<", html)  # a custom attribute
    assert "iPhone16,2" in html and "subscribed" in html
    assert html.count('class="pp-session"') == 3  # the phone's session, the tablet's two
    assert "Product Viewed" in html and "sku=A-1" in html
    assert "Invoice Paid" in html and 'class="pp-standalone"' in html
    assert html.count("<rect ") == 90
    assert "Merge history" in html and "Identify (guest logged in)" in html
    tombstone = Profile.objects.get(merged_into=ada)
    assert f"/admin/profiles/profile/{tombstone.pk}/change/" in html
    tombstone_html = page(staff_client, tombstone)
    assert "This profile was merged into" in tombstone_html
    assert 'class="pp-identity">Guest<' in tombstone_html


def test_older_activity_pages_by_cursor(staff_client: Client, send: Send) -> None:
    send(*(track("d1", f"Visit {n}", n * 60) for n in range(25)))
    profile = profile_of("d1")
    first = page(staff_client, profile)
    assert first.count('class="pp-session"') == 20
    assert "Visit 24" in first and "Visit 4<" not in first
    older = re.search(r'href="\?older=([^"#]+)#timeline"', first)
    assert older is not None
    second = page(staff_client, profile, f"?older={older.group(1)}")
    assert second.count('class="pp-session"') == 5
    assert "Visit 4<" in second and "Visit 24" not in second
    assert 'class="pp-older"' not in second
    # A broken cursor shows the newest page instead of failing.
    assert "Visit 24" in page(staff_client, profile, "?older=garbage")


def test_profile_page_queries_do_not_grow_with_history(
    staff_client: Client, api_app: ApiApp, send: Send, django_assert_max_num_queries: Any
) -> None:
    send(*(track("small", f"E{n}", n) for n in range(3)))
    send(*(track("big", f"E{n}", n / 4) for n in range(400)))
    counts = []
    for device in ("small", "big"):
        profile = profile_of(device)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            page(staff_client, profile)
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert counts[1] <= 20


def test_a_session_shows_its_newest_5_events_and_how_many_earlier(
    staff_client: Client, send: Send
) -> None:
    send(*({**track("d1", f"Step {n}", n / 10), "properties": {"n": n}} for n in range(12)))
    html = page(staff_client, profile_of("d1"))
    assert html.count('class="pp-session"') == 1
    assert html.count('class="pp-event"') == 5
    shown = re.findall(r'class="pp-event-name">([^<]*)<', html)
    assert shown == ["Step 11", "Step 10", "Step 9", "Step 8", "Step 7"]
    assert "n=11" in html and "n=6" not in html
    assert "… 7 earlier events in this session" in html


def _viewer_without_pii() -> Client:
    user = UserFactory.create()
    user.user_permissions.add(*Permission.objects.filter(codename="view_profile"))
    AppMembership.objects.bulk_create(
        AppMembership(app=app, user=user, role=AppMembership.Role.VIEWER)
        for app in App.objects.all()
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("pii", [True, False], ids=["superuser", "viewer-without-pii"])
def test_profile_page_queries_do_not_depend_on_events_per_session(
    staff_client: Client, send: Send, pii: bool
) -> None:
    """The same statements whether sessions hold 3 or 30 events: at most 5 events a session
    are read, without their context, and the page loads no deferred column per event."""
    profiles = {
        user: (session_history(send, user, n, {"email": f"{user}@example.com"}), n)
        for user, n in (("few", 3), ("many", 30))
    }
    client = staff_client if pii else _viewer_without_pii()
    page(client, profiles["few"][0])  # warm the per-request caches
    counts = []
    for user, (profile, per_session) in profiles.items():
        with CaptureQueriesContext(connection) as queries:
            html = page(client, profile)
        assert html.count('class="pp-session"') == 4
        assert html.count('class="pp-standalone"') == 4
        assert html.count('class="pp-event"') == min(per_session, 5) * 3 + min(per_session + 1, 5)
        assert ("25 earlier events in this session" in html) == (per_session == 30)
        assert (f"{user}@example.com" in html) == pii
        events_sql = [q["sql"] for q in queries.captured_queries if "events_event" in q["sql"]]
        assert len(events_sql) == 2, events_sql  # the standalone events, the sessions' events
        assert not [sql for sql in events_sql if '"context"' in sql], events_sql
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
