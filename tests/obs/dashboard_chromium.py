#!/usr/bin/python3
"""Headless Chromium (Debian's) loads the dashboard of a running `relay train` over the DevTools
protocol (--remote-debugging-pipe: no port, no websocket), waits for live updates, checks that the
learning curve has points and that the numbers change, and saves a screenshot as a test artifact
(<build>/test-artifacts/dashboard.png)."""
import base64
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from obs_util import DevTools, Procs, start_chromium, start_train, wait_for  # noqa: E402

relay = sys.argv[1]
artifacts = sys.argv[2] if len(sys.argv) > 2 else "."
chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
if not os.path.exists(chromium):
    print(f"SKIP: {chromium} not installed (scripts/install-deps installs it)")
    sys.exit(77)


with Procs() as procs:
    train, url, run, log = start_train(procs, relay, ["--routers", "2"], 50)
    dt = start_chromium(procs, chromium)
    target = dt.call("Target.createTarget", {"url": url + "?interval=300"})["targetId"]
    session = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    dt.call("Runtime.enable", session=session)

    def page(expr):
        r = dt.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
        if "exceptionDetails" in r:
            raise AssertionError(f"page script error: {r['exceptionDetails']}")
        return r["result"].get("value")

    probe = ("JSON.stringify(window.relayDash ? {u: relayDash.updates, e: relayDash.errors, "
             "p: relayDash.points.length, first: relayDash.firstSteps, last: relayDash.lastSteps, "
             "steps: document.getElementById('steps').textContent, "
             "version: document.getElementById('version').textContent, "
             "routers: document.querySelectorAll('#routers tr').length, "
             "title: document.getElementById('title').textContent} : null)")
    state = lambda: json.loads(page(probe) or "null")  # noqa: E731
    first = wait_for(lambda: (lambda s: s if s and s["u"] >= 2 and s["p"] > 0 else None)(state()),
                     30, "the dashboard's first live updates")
    later = wait_for(lambda: (lambda s: s if s["u"] >= first["u"] + 4 and s["steps"] != first["steps"]
                              and s["version"] != first["version"] else None)(state()),
                     30, "the dashboard's numbers to change")
    assert later["p"] >= first["p"] > 0, (first, later)
    assert later["last"] > later["first"], later
    assert later["routers"] == 2, later
    assert "CartPole-v1" in later["title"], later
    assert later["e"] == 0, f"the page saw {later['e']} failed polls"
    curve_px = page("(() => { const c = document.getElementById('curve'); const d = c.getContext('2d')"
                    ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
                    " for (let i = 0; i < d.length; i += 4) if (d[i+2] > 150 && d[i] < 80) n++; return n; })()")
    assert curve_px > 50, f"the learning curve drew only {curve_px} blue pixels"
    shot = dt.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
    os.makedirs(artifacts, exist_ok=True)
    png = os.path.join(artifacts, "dashboard.png")
    with open(png, "wb") as f:
        f.write(base64.b64decode(shot))
    assert os.path.getsize(png) > 10000, "screenshot suspiciously small"
    try:
        dt.call("Browser.close", timeout=5)
    except AssertionError:
        pass
    assert train.poll() is None, "training stopped while the dashboard was open"
    print(f"dashboard: {first['u']} -> {later['u']} updates, curve {later['p']} points, "
          f"steps {first['steps']} -> {later['steps']}, version {first['version']} -> "
          f"{later['version']}; screenshot {png}")
print("dashboard chromium test passed")
