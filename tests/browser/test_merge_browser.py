"""A staff admin merges two profiles from the list in Chromium, through the confirmation page,
lands on the merged profile, and undoes the merge."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from events.models import Event
from profiles.models import AppMembership, Profile, ProfileMerge
from profiles.services import app_create
from tests.browser.conftest import login, screenshot, wait_for_text, wait_for_url
from tests.factories import UserFactory
from tests.messages import identify, track

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_merge_from_the_list_and_undo_in_chromium(
    browser: WebDriver, live_server: Any, client: Any, settings: Any
) -> None:
    app, keys = app_create(name="Merge app")
    staff = UserFactory.create(username="mia")
    AppMembership.objects.create(app=app, user=staff, role="admin")
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    batch = [
        identify("phone", "henry", 0, {"email": "henry@example.com"}),
        track("phone", "Phone visit", 1),
        track("tablet", "Tablet browse", 2),
    ]
    response = client.post(
        "/v1/batch",
        orjson.dumps({"batch": batch}),
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )
    assert response.status_code == 200
    henry = Profile.objects.get(app=app, user_id="henry")
    guest = Profile.objects.get(app=app, devices__device_id="tablet")

    login(browser, live_server.url, "mia", "correct-horse-battery")
    browser.get(f"{live_server.url}/admin/profiles/profile/")
    for profile in (henry, guest):
        browser.find_element(By.CSS_SELECTOR, f"input.action-select[value='{profile.pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("merge_selected")
    browser.find_element(By.NAME, "index").click()

    # The action posts back to the list's own address: wait for the confirmation page itself.
    wait_for_text(browser, "What moves into henry")
    screenshot(browser, "merge_confirm.png")
    browser.find_element(By.ID, "confirm-merge").click()
    wait_for_url(browser, f"/admin/profiles/profile/{henry.pk}/change/")
    wait_for = lambda: ProfileMerge.objects.get().status == "done"  # noqa: E731  (eager on commit)
    assert wait_for()
    browser.refresh()
    timeline = browser.find_element(By.ID, "timeline").text
    assert browser.find_element(By.CLASS_NAME, "pp-identity").text == "henry"
    assert "2 events" in timeline or "Tablet browse" in browser.page_source
    assert Event.objects.get(name="Tablet browse").profile_id == henry.pk
    screenshot(browser, "merged_profile.png")

    browser.find_element(By.CLASS_NAME, "pp-undo").click()
    browser.find_element(By.ID, "confirm-undo").click()
    wait_for_url(browser, f"/admin/profiles/profile/{guest.pk}/change/")
    assert "was undone" in browser.page_source
    assert ProfileMerge.objects.get().status == "undone"
    assert Event.objects.get(name="Tablet browse").profile_id == guest.pk
    screenshot(browser, "after_undo.png")
