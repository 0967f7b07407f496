"""A staff member reads a customer's story in a real browser: log in, open the profile, see
its sessions, expand one, page to older activity; a screenshot is kept in test-artifacts/."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from profiles.models import Profile
from profiles.services import app_create
from tests.browser.conftest import login, screenshot
from tests.factories import UserFactory
from tests.messages import identify, track

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_reads_a_profile_timeline_in_chromium(
    browser: WebDriver, live_server: Any, client: Any
) -> None:
    app, keys = app_create(name="Browser app")
    UserFactory.create(username="ana", is_superuser=True)
    messages = [identify("phone", "grace", 0, {"email": "grace@example.com", "firstName": "Grace"})]
    for n in range(25):  # 25 sessions, an hour apart: more than one page
        messages.append({**track("phone", "Application Opened", n * 60), "messageId": f"open-{n}"})
        messages.append(
            {**track("phone", f"Viewed product {n}", n * 60 + 1), "properties": {"sku": f"S-{n}"}}
        )
    import base64

    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    response = client.post(
        "/v1/batch",
        orjson.dumps({"batch": messages}),
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )
    assert response.status_code == 200 and response.json()["accepted"] == 51
    grace = Profile.objects.get(app=app, user_id="grace")

    login(browser, live_server.url, "ana", "correct-horse-battery")
    browser.get(f"{live_server.url}/admin/profiles/profile/{grace.pk}/change/")
    assert browser.find_element(By.CLASS_NAME, "pp-identity").text == "grace"
    sessions = browser.find_elements(By.CSS_SELECTOR, "li.pp-session")
    assert len(sessions) == 20
    newest = sessions[0]
    events = newest.find_element(By.CSS_SELECTOR, "ul.pp-events")
    assert not events.is_displayed()  # collapsed until expanded
    newest.find_element(By.TAG_NAME, "summary").click()
    assert events.is_displayed()
    assert "Viewed product 24" in events.text and "sku=S-24" in events.text
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.pp-chart rect")) == 90
    screenshot(browser, "profile_page.png")

    browser.find_element(By.CLASS_NAME, "pp-older").click()
    older = browser.find_elements(By.CSS_SELECTOR, "li.pp-session")
    assert len(older) == 5  # the 5 oldest sessions (the first also holds the identify)
    older[-1].find_element(By.TAG_NAME, "summary").click()
    assert "Viewed product 0" in browser.find_element(By.ID, "timeline").text
    screenshot(browser, "profile_page_older.png")
