"""End to end: the agent console in headless Chromium against a real server on loopback."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (.ci/run installs it)")

from serve.app import create_app  # noqa: E402
from serve.settings import ServeSettings  # noqa: E402

TOKEN = "console-e2e"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = ServeSettings(tokens=[TOKEN], warning_log=str(tmp_path_factory.mktemp("log") / "w.sqlite3"),
                             reload_interval_s=0)
    port = free_port()
    instance = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def test_type_violation_see_highlight_apply_rewrite(server, tmp_path):
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server}/?token={TOKEN}")
        page.wait_for_selector("text=已连接")

        page.fill("#customer-text", "这件羽绒服保暖吗")
        page.click("#customer-send")
        page.click("#draft")
        page.keyboard.type("亲，这款是全网最好的羽绒服")

        mark = page.wait_for_selector("mark.violation")
        assert mark.inner_text() == "全网最好"
        assert "ad_law.network_best" in mark.get_attribute("title") and "广告法" in mark.get_attribute("title")
        warning = page.locator(".warning").first
        assert "广告法" in warning.inner_text() and "建议改为" in warning.inner_text()
        page.screenshot(path=str(tmp_path / "console-warning.png"))

        page.click(".warning .apply")
        page.wait_for_function("document.querySelectorAll('mark.violation').length === 0")
        page.wait_for_function("document.getElementById('count').textContent === '0'")
        draft = page.input_value("#draft")
        assert "全网最好" not in draft and draft.startswith("亲，这款是这款口碑很好")
        assert errors == []
        browser.close()
