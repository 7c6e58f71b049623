"""The dashboard end to end: a headless Chromium (driven over the DevTools protocol) loads GET /
from a follower, the test reads what the page shows, clicks a task-switch toggle, checks through
the API that the config changed, and saves a screenshot in the test's temporary directory."""
import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request

import websocket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """Just enough of the DevTools protocol: one page, evaluate, mouse clicks, screenshots."""

    def __init__(self, workdir, width=1400, height=1100):
        self.profile = os.path.join(workdir, "chromium-profile")
        os.makedirs(self.profile)
        self.log = open(os.path.join(workdir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
             "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        port = self._devtools_port()
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.next_id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _devtools_port(self, timeout=60):
        path = os.path.join(self.profile, "DevToolsActivePort")
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            try:
                with open(path) as f:
                    port = f.readline().strip()
                if port:
                    return int(port)
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.1)
        raise TimeoutError(expr)

    def click(self, selector):
        box = self.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: "center"}}); const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                      clickCount=1)

    def screenshot(self, path):
        self.eval("window.scrollTo(0, 0)")
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


PAGE_STATE = """(() => {
  const rows = [...document.querySelectorAll('#members tbody tr')].map(tr =>
    [...tr.children].map(td => td.textContent));
  const sw = {};
  document.querySelectorAll('#switches input[data-key]').forEach(i => {
    sw[i.dataset.key] = {checked: i.checked, shown: document.getElementById('state-' + i.dataset.key).textContent};
  });
  return {leader: document.getElementById('leader-id').textContent,
          health: document.getElementById('health').textContent,
          served: document.getElementById('served-by').textContent,
          rows, sw,
          idcs: [...document.querySelectorAll('#idcs .idc')].map(e => e.dataset.idc),
          volumes: [...document.querySelectorAll('#volumes .vol')].map(e => e.dataset.status),
          history: document.querySelectorAll('#history tbody tr').length};
})()"""


def test_dashboard_in_chromium(make_cluster, tmp_path):
    assert CHROMIUM, "chromium is required (scripts/deps.sh installs it)"
    c = make_cluster(nodes=3, idc="z0,z1,z2")
    lid = c.wait_leader()
    follower = next(i for i in (1, 2, 3) if i != lid)
    assert c.post(lid, "/config/set", {"key": "blob_delete", "value": "Enable"}).status_code == 200
    assert c.get(follower, "/config/get?key=balance").json() == "Disable"
    t0 = time.time()
    b = Browser(str(tmp_path))
    try:
        b.call("Page.navigate", url=c.url(follower, "/"))
        b.wait("document.body && document.body.dataset.loaded === '1'")
        # the follower's page shows the leader's view of replication
        st = b.wait(f"(() => {{ const s = {PAGE_STATE}; "
                    "return s.rows.length === 3 && s.rows.every(r => r[5] !== '–') && s; })()")
        assert st["leader"] == str(lid)
        assert st["health"] == "healthy"
        assert st["served"] == f"node {follower} · follower"
        rows = {r[0]: r for r in st["rows"]}
        assert set(rows) == {"1", "2", "3"}
        for i in (1, 2, 3):
            r = rows[str(i)]
            assert r[1] == "voter"
            assert r[2] == ("leader" if i == lid else "follower")
            assert r[3] == c.raft_addr(i) and r[4] == c.http(i)
            assert r[6] == "0"  # caught up
            assert r[7] == "replicate"
            assert r[8] == "2"  # the format version of its binary
        assert st["idcs"] == ["z0", "z1", "z2"]
        assert st["volumes"] == ["total", "idle", "allocatable", "active", "lock", "unlocking"]
        assert st["history"] >= 1
        assert {k: v["checked"] for k, v in st["sw"].items()} == {
            "disk_repair": False, "balance": False, "disk_drop": False, "blob_delete": True,
            "shard_repair": False, "vol_inspect": False, "data_inspect": False}
        assert st["sw"]["blob_delete"]["shown"] == "Enable"

        # switch balance on with a click on its toggle; the follower forwards the write
        b.click("label.toggle:has(#switch-balance)")
        b.wait("document.getElementById('state-balance').textContent === 'Enable'")
        end = time.time() + 10
        while c.get(lid, "/config/get?key=balance").json() != "Enable":
            assert time.time() < end, "the click did not change the config"
            time.sleep(0.1)
        for i in (1, 2, 3):
            assert c.get(i, "/config/get?key=balance").json() == "Enable"
        assert "balance set to Enable" in b.eval("document.getElementById('switch-msg').textContent")
        # the next refresh still shows it, from the replicated state
        time.sleep(2.5)
        st = b.eval(PAGE_STATE)
        assert st["sw"]["balance"] == {"checked": True, "shown": "Enable"}

        # and off again
        b.click("label.toggle:has(#switch-balance)")
        b.wait("document.getElementById('state-balance').textContent === 'Disable'")
        end = time.time() + 10
        while c.get(follower, "/config/get?key=balance").json() != "Disable":
            assert time.time() < end, "the second click did not change the config"
            time.sleep(0.1)
        b.click("label.toggle:has(#switch-balance)")  # leave it on for the screenshot
        b.wait("document.getElementById('state-balance').textContent === 'Enable'")

        shot = tmp_path / "dashboard.png"
        b.screenshot(str(shot))
        assert shot.stat().st_size > 20000
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        print(f"\ndashboard screenshot: {shot} (browser part took {time.time() - t0:.1f} s)")
        if os.environ.get("CM_SCREENSHOT"):
            shutil.copy(shot, os.environ["CM_SCREENSHOT"])
    finally:
        b.close()


def test_dashboard_with_request_tokens(make_cluster, tmp_path):
    """With auth on, the page asks for the secret, signs its requests like a CubeFS client, and
    a toggle still works; without the secret it shows nothing of the cluster."""
    assert CHROMIUM, "chromium is required (scripts/deps.sh installs it)"
    secret = "dash-secret"
    c = make_cluster(nodes=3, extra={"auth": {"enable_auth": True, "secret": secret}})
    lid = c.wait_leader()
    assert c.get(lid, "/dashboard/data", auth=False).status_code == 403
    assert c.get(lid, "/", auth=False).status_code == 200  # static page only
    b = Browser(str(tmp_path))
    try:
        b.call("Page.navigate", url=c.url(lid, "/"))
        b.wait("document.getElementById('auth') && !document.getElementById('auth').hidden")
        assert b.eval("document.body.dataset.loaded") != "1"
        # the page computes exactly the token the clients compute
        for path, ts in (("/dashboard/data", 1700000000), ("/config/get?key=balance", 5)):
            assert b.eval(f"authToken({json.dumps(path)}, {json.dumps(secret)}, {ts})") == \
                c.token(path, secret, ts=ts)
        b.eval(f"document.getElementById('auth-secret').value = {json.dumps(secret)}; "
               "document.getElementById('auth').requestSubmit(); true")
        b.wait("document.body.dataset.loaded === '1'")
        assert b.eval("document.getElementById('leader-id').textContent") == str(lid)
        b.click("label.toggle:has(#switch-vol_inspect)")
        b.wait("document.getElementById('state-vol_inspect').textContent === 'Enable'")
        assert c.get(lid, "/config/get?key=vol_inspect").json() == "Enable"
    finally:
        b.close()
