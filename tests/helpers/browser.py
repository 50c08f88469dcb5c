"""Open an HTML page in headless Chromium (Debian's `chromium`): screenshot, images, requests.

:func:`inspect_page` loads a copy of the page with a small probe script appended, which, once
the page has loaded, records how many images there are, which did not load (not complete or
zero natural width) and every resource the document fetched (Resource Timing). Chromium also
writes a net log; every URL request in it that the page started (its initiator is the page's
origin, not the browser itself) is returned. The browser's own background requests (updates,
accounts) are kept on this machine: host resolution fails for every name and the proxy is a
closed local port, so nothing leaves it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.processes import run

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--no-first-run",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
)

PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var out = document.createElement("pre");
  out.id = "geokd-probe";
  out.textContent = JSON.stringify({
    images: images.length,
    broken: broken.map(function (i) { return i.alt || i.src.slice(0, 60); }),
    resources: performance.getEntriesByType("resource").map(function (e) { return e.name; })
  });
  document.body.appendChild(out);
});
</script>"""


@dataclass
class PageReport:
    images: int
    broken: list[str]
    resources: list[str]  # everything the document fetched (Resource Timing)
    page_requests: list[str]  # URL requests the page started, from Chromium's net log
    screenshot: Path


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    # in a session of its own: a browser that hangs is stopped with all its helper processes
    return run([exe, *CHROMIUM_FLAGS, *args], timeout=timeout, grace=5)


def _page_requests(netlog: Path) -> list[str]:
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] == start and "url" in params:
            if params.get("initiator", "not an origin") != "not an origin":
                urls.append(params["url"])
    return urls


def inspect_page(html: Path, work: Path, *, width: int = 1280, height: int = 2400) -> PageReport:
    """Load ``html`` (a copy with the probe) in headless Chromium; see the module docstring."""
    work.mkdir(parents=True, exist_ok=True)
    text = html.read_text(encoding="utf-8")
    if "</body>" not in text:
        raise ValueError(f"{html}: no </body>")
    probed = work / "probed.html"
    probed.write_text(text.replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
    netlog, shot = work / "netlog.json", work / "screenshot.png"
    common = ["--virtual-time-budget=10000", f"--window-size={width},{height}"]
    dom = _run([*common, f"--log-net-log={netlog}", "--dump-dom", probed.as_uri()], timeout=120)
    _run([*common, f"--screenshot={shot}", probed.as_uri()], timeout=120)
    marker = '<pre id="geokd-probe">'
    if marker not in dom.stdout:
        raise AssertionError(f"the probe did not run; chromium said:\n{dom.stderr[-2000:]}")
    payload = dom.stdout.split(marker, 1)[1].split("</pre>", 1)[0]
    payload = payload.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    result = json.loads(payload.replace("&amp;", "&"))
    return PageReport(
        images=result["images"],
        broken=result["broken"],
        resources=result["resources"],
        page_requests=_page_requests(netlog),
        screenshot=shot,
    )
