"""A real browser (headless Chromium over DevTools): sign in, see a queued MR with its reason,
raise its priority, see the new order arrive live, save a screenshot."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.admin.cdp import Browser
from tests.admin.test_live_queue import ADMIN_PASSWORD, bot, queue_two, world  # noqa: F401 - fixtures
from tests.e2e.harness import Bot, World

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT_DIR_VARIABLE = "MERGE_ASSIST_SCREENSHOT_DIR"


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed; CI=true requires it (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI is not set, so the "
                    "real-browser dashboard test is skipped")
    opened = Browser(CHROMIUM)
    yield opened
    opened.close()


def rows(browser: Browser) -> list[dict[str, str]]:
    return browser.evaluate("""[...document.querySelectorAll('tr.entry')].map(r => ({
        mr: r.dataset.mr, reason: r.querySelector('.reason').textContent, text: r.textContent}))""")


def test_dashboard_sign_in_queue_priority_live(browser: Browser, bot: Bot, world: World, tmp_path: Path) -> None:
    first, second = queue_two(bot, world)
    browser.command("Page.navigate", url=bot.url + "/")
    browser.wait_for("document.readyState === 'complete' && !!document.querySelector('#signin-form')",
                     message="the sign-in page")
    assert browser.evaluate("document.querySelector('#app').hidden") is True
    assert "Second change" not in browser.evaluate("document.body.innerText")
    browser.evaluate(f"""document.querySelector('#username').value = 'root';
        document.querySelector('#password').value = {json.dumps(ADMIN_PASSWORD)};
        document.querySelector('#signin-form').requestSubmit(); true""")
    browser.wait_for("document.querySelectorAll('tr.entry').length === 2", message="two queued MRs")
    shown = rows(browser)
    assert [row["mr"] for row in shown] == [str(first), str(second)]
    assert "Second change" in shown[1]["text"] and "alice" in shown[1]["text"]
    assert shown[0]["reason"] and shown[1]["reason"]
    browser.evaluate(f"""(() => {{ const row = document.querySelector('tr.entry[data-mr="{second}"]');
        row.querySelector('select.priority').value = 'urgent';
        row.querySelector('button.set-priority').click(); return true; }})()""")
    browser.wait_for(f"document.querySelector('tr.entry').dataset.mr === '{second}'", timeout=20,
                     message="the new order, pushed by the event stream")
    assert [row["mr"] for row in rows(browser)] == [str(second), str(first)]
    browser.wait_for("document.querySelector('#audit').innerText.includes('priority')", message="audit entry")
    target = Path(os.environ.get(SCREENSHOT_DIR_VARIABLE) or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    screenshot = target / "dashboard.png"
    browser.screenshot(screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"dashboard screenshot: {screenshot}")
