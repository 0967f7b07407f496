"""Debian's Chromium driven by Selenium against Django's live server. Never a downloaded
browser: /usr/bin/chromium and /usr/bin/chromedriver (make test installs them when missing)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1600",
    ):
        options.add_argument(flag)
    profile_dir = tempfile.mkdtemp(prefix="pushapp-chromium-")
    options.add_argument(f"--user-data-dir={profile_dir}")
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def login(browser: WebDriver, base_url: str, username: str, password: str) -> None:
    browser.get(f"{base_url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:  # the click only dispatches the submit: wait for the page it leads to
        WebDriverWait(browser, 10).until(lambda d: "/admin/login/" not in d.current_url)
    except TimeoutException:
        raise AssertionError(f"still on the login page: {browser.page_source[:500]}") from None


def screenshot(browser: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    return path


def wait_for_url(browser: WebDriver, fragment: str, timeout: float = 10) -> None:
    """Wait until the page a click submitted has loaded: ``click()`` returns once the event is
    dispatched, before the navigation it starts has finished."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(
        lambda driver: (
            fragment in driver.current_url
            and driver.execute_script("return document.readyState") == "complete"
        ),
        message=f"no page with {fragment!r} in its address",
    )


def wait_for_text(browser: WebDriver, text: str, timeout: float = 10) -> None:
    """Wait until a submitted page showing ``text`` has loaded, for a form that posts back to
    its own address (an admin action's confirmation page), where ``wait_for_url`` cannot tell
    the old page from the new one."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(
        lambda driver: (
            text in driver.page_source
            and driver.execute_script("return document.readyState") == "complete"
        ),
        message=f"no page showing {text!r}",
    )
