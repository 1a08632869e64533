"""The report in a real browser: headless Chromium opens it from disk and every chart renders, with no console
error and no request to any other host; screenshots land in ``test-artifacts/report/`` for a human to look at.

Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (file descriptors 3 and 4,
NUL-separated JSON), so the test needs nothing beyond the standard library and Debian's ``chromium``
package. Without it the test is skipped, unless ``CI`` is set: then it fails (``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reports.test_report import build_plans

pytestmark = pytest.mark.slow  # headless Chromium renders every chart (~10 s)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "report"
INSTALL = "apt-get install -y --no-install-recommends chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe")
TRAMPOLINE = ("import os, sys; a, b = int(sys.argv[1]), int(sys.argv[2]); os.dup2(a, 3); os.dup2(b, 4); "
              "os.close(a); os.close(b); os.execv(sys.argv[3], sys.argv[3:])")
DESKTOP = (1280, 800)
PHONE = (390, 844)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    msg = f"headless Chromium is not installed; install it with: {INSTALL}"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


class Browser:
    """One headless Chromium, spoken to over the DevTools protocol on a pipe."""

    def __init__(self, exe: str, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.profile = tempfile.TemporaryDirectory(prefix="advise-chromium-")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        # Chromium's ends, above 3 and 4 so that moving them there cannot overwrite one another
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]
        for fd in (to_chrome_r, from_chrome_w):
            os.close(fd)
        # a Python trampoline puts them on fds 3 (commands in) and 4 (messages out), then becomes Chromium
        self.proc = subprocess.Popen(
            [sys.executable, "-c", TRAMPOLINE, str(ends[0]), str(ends[1]), exe, *FLAGS,
             f"--user-data-dir={self.profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=tuple(ends))
        for fd in ends:
            os.close(fd)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    # -- protocol
    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self._w, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(f"Chromium exited (code {self.proc.poll()}); run it by hand to see why") from None
        deadline = time.monotonic() + self.timeout_s
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self._next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, session: str, timeout_s: float) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method and e.get("sessionId") == session:
                return e
        deadline = time.monotonic() + timeout_s
        while True:
            m = self._read_message(deadline)
            self.events.append(m)
            if m.get("method") == method and m.get("sessionId") == session:
                return m

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        self.profile.cleanup()

    # -- a page
    def open(self, path: Path, width: int, height: int, mobile: bool = False) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for m in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            self.send(m, session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}, session=session)
        self.events.clear()
        self.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        self.wait_event("Page.loadEventFired", session, self.timeout_s)
        page = Page(self, session, target)
        deadline = time.monotonic() + self.timeout_s
        while page.eval("document.documentElement.getAttribute('data-charts')") not in ("rendered", "no-plotly"):
            if not page.eval("document.querySelector('[data-chart]')"):
                break  # a report without charts
            if time.monotonic() > deadline:
                raise TimeoutError("the charts did not finish rendering")
            time.sleep(0.05)
        return page


class Page:
    def __init__(self, browser: Browser, session: str, target: str) -> None:
        self.browser, self.session, self.target = browser, session, target

    def eval(self, expression: str) -> Any:
        r = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                              session=self.session)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.browser.send("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self.browser.send("Page.captureScreenshot", params, session=self.session)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and log errors seen since the page was opened."""
        out = []
        for e in self.browser.events:
            if e.get("sessionId") != self.session:
                continue
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('exception', {}).get('description')}")
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p['args']]}")
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry']['text']} ({p['entry'].get('url')})")
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.browser.events
                if e.get("sessionId") == self.session and e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})


@pytest.fixture(scope="session")
def plans(tmp_path_factory):
    return build_plans(tmp_path_factory)


@pytest.fixture(scope="module")
def browser():
    b = Browser(chromium_path())
    yield b
    b.close()


@pytest.fixture(scope="module")
def written(plans, tmp_path_factory):
    """Each example's report, inline plotly.js, on disk."""
    from reports.html import render_report

    out = tmp_path_factory.mktemp("reports")
    paths = {}
    for name, plan in plans.items():
        configs = {"axolotl/config.yaml": "# run: axolotl train axolotl/config.yaml\nbase_model: demo\n"}
        paths[name] = out / f"{name}.html"
        paths[name].write_text(render_report(plan, configs=configs), encoding="utf-8")
    return paths


def _check_page(page: Page, expected_charts: int) -> None:
    assert page.problems() == []
    local = ("file:", "data:", "blob:", "about:")
    assert [u for u in page.requests() if not u.startswith(local)] == []
    assert page.eval("document.querySelectorAll('[data-chart]').length") == expected_charts
    assert page.eval("document.querySelectorAll('[data-chart][data-rendered] .main-svg').length") >= expected_charts
    # every chart drew marks (bars, heatmap cells or lines), not an empty frame
    drawn = page.eval("Array.from(document.querySelectorAll('[data-chart]')).map(function (el) {"
                      " return el.querySelectorAll('.point, .trace, .hm, image').length; })")
    assert all(n > 0 for n in drawn), drawn
    # no horizontal scrolling: the page fits its width
    assert page.eval("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("name", ["ticket-triage", "brand-voice"])
def test_report_renders_every_chart_without_errors_or_requests(browser, written, plans, name):
    from reports.html import context

    expected = len(context(plans[name])["charts_json"])
    assert expected == 5  # memory, fit, time and cost per GPU, 12 months, options against today
    shots = []
    for tag, (w, h), mobile in (("desktop", DESKTOP, False), ("phone", PHONE, True)):
        page = browser.open(written[name], w, h, mobile)
        try:
            _check_page(page, expected)
            # the first screen holds the recommendation and its figures
            top = page.eval("document.querySelector('.lead').getBoundingClientRect().bottom")
            assert top < h
            shots.append(page.screenshot(ARTIFACTS / f"{name}-{tag}.png"))
            shots.append(page.screenshot(ARTIFACTS / f"{name}-{tag}-full.png", full_page=True))
        finally:
            page.close()
    print("screenshots:", *shots, sep="\n  ")


def test_report_without_charts_and_hostile_strings_stay_inert(browser, plans, tmp_path):
    from reports.html import render_report

    plan = json.loads(json.dumps(plans["ticket-triage"]))
    payload = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    plan["project"] = payload
    plan["summary"] = payload
    plan["answers"]["task"]["description"] = payload
    for row in plan["estimates"]["fit_matrix"]:
        row["gpu"] = payload
    plan["recommendation"]["gpus"] = [payload]
    path = tmp_path / "hostile.html"
    path.write_text(render_report(plan), encoding="utf-8")
    page = browser.open(path, *DESKTOP)
    try:
        assert page.eval("window.__pwned") is None
        assert page.eval("document.querySelectorAll('img').length") == 0
        assert page.eval("document.querySelector('h1').textContent") == payload
        assert page.eval("document.documentElement.getAttribute('data-charts')") == "rendered"
        # plotly shows the hostile GPU name as text in its tick labels, not as markup
        ticks = page.eval("Array.from(document.querySelectorAll('#chart-fit .xtick text')).map(t => t.textContent)")
        assert payload in ticks
    finally:
        page.close()

    quiet = tmp_path / "policy-qa.html"
    quiet.write_text(render_report(plans["policy-qa"]), encoding="utf-8")
    page = browser.open(quiet, *PHONE, mobile=True)
    try:
        assert page.problems() == []
        assert page.eval("document.querySelectorAll('[data-chart]').length") == 0
        assert page.eval("document.querySelectorAll('.missing').length") >= 4
        page.screenshot(ARTIFACTS / "policy-qa-phone.png")
    finally:
        page.close()
