"""The admin console end to end, in a headless Chromium driven over the DevTools protocol.

On a live cluster with a simulated blobnode fleet, the page (served by a follower) adds a learner
through its form, follows it catching up, promotes it, moves leadership to it and removes another
member, each checked against /stat; it filters and pages disks and volumes, makes a disk readonly,
locks and unlocks a volume, browses services, KV keys and config, and draws the history charts.
With auth on, actions without the secret fail with the reason on the page, and carry a valid token
once it is entered. Screenshots of each view go to the test's temporary directory (the path is
printed; CM_SCREENSHOT_DIR copies them elsewhere)."""
import base64
import json
import os
import shutil
import time

import pytest

from test_dashboard import CHROMIUM, Browser
from volutil import Sim, wait, wait_pool

POOL = 4
EXTRA = {"volume_mgr_config": {"min_allocable_volume_count": POOL,
                               "check_expired_volume_interval_s": 1,
                               "blob_node_config": {"client_timeout_ms": 3000}},
         "disk_mgr_config": {"heartbeat_expire_interval_s": 3}}


def js(v):
    return json.dumps(v)


class Console:
    """The console page in a browser: views, forms, the confirmation dialog, screenshots."""

    def __init__(self, browser, shots):
        self.b, self.shots = browser, shots

    def open(self, url):
        self.b.call("Page.navigate", url=url)
        self.b.wait("document.body && document.body.dataset.loaded === '1'")

    def view(self, name, ready):
        self.b.eval(f"location.hash = {js('#' + name)}; true")
        return self.b.wait(ready)

    def fill(self, fields):
        for sel, value in fields.items():
            self.b.eval(f"""(() => {{ const e = document.querySelector({js(sel)});
                e.value = {js(str(value))}; e.dispatchEvent(new Event('change')); return true; }})()""")

    def submit(self, form):
        self.b.eval(f"document.getElementById({js(form)}).requestSubmit(); true")

    def text(self, sel):
        return self.b.eval(f"(document.querySelector({js(sel)}) || {{}}).textContent || ''")

    def confirm(self, expect=None, ok=True):
        """The confirmation names the effect; returns its text after answering it."""
        self.b.wait("document.getElementById('confirm').open")
        effect = self.text("#confirm-effect")
        if expect is not None:
            assert expect in effect, effect
        self.b.click("#confirm-ok" if ok else "#confirm-cancel")
        self.b.wait("!document.getElementById('confirm').open")
        return effect

    def rows(self, table):
        return self.b.eval(f"""[...document.querySelectorAll('#{table} tbody tr')].map(tr =>
            [...tr.children].map(td => td.textContent))""")

    def wait_msg(self, sel, needle, timeout=20):
        self.b.wait(f"document.querySelector({js(sel)}).textContent.includes({js(needle)})",
                    timeout=timeout)
        return self.text(sel)

    def shot(self, name):
        path = os.path.join(self.shots, name)
        self.b.screenshot(path)
        assert os.path.getsize(path) > 10000
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        return path


def peers(c, i):
    return {p["id"]: p for p in c.stat(i)["raft_status"]["peers"] or []}


def page_disks(con):
    return [int(r[0]) for r in con.rows("disks") if r[0].isdigit()]


def page_vids(con):
    return [int(r[0]) for r in con.rows("vols") if r[0].isdigit()]


def loaded(table):
    """An expression true once the table was (re)loaded after this call was evaluated."""
    return f"document.getElementById('{table}').dataset.loaded > {int(time.time() * 1000) - 1}"


def copy_shots(paths):
    dest = os.environ.get("CM_SCREENSHOT_DIR")
    if dest:
        os.makedirs(dest, exist_ok=True)
        for p in paths:
            shutil.copy(p, dest)


def test_console_operations(make_cluster, tmp_path):
    assert CHROMIUM, "chromium is required (scripts/deps.sh installs it)"
    t_start = time.time()
    c = make_cluster(nodes=3, max_nodes=4, extra=EXTRA)
    lid = c.wait_leader()
    sim = Sim(c, hosts=3, disks=4).start()
    b = None
    shots = []
    try:
        sim.wait(lambda: sim.stats()["registered"] == 12, what="registration")
        wait_pool(c, POOL)
        for key, raw in (("console/text", b"hello console"), ("console/bin", b"\x00\x01\xff")):
            r = c.post(lid, "/kv/set", {"key": key, "value": base64.b64encode(raw).decode()})
            assert r.status_code == 200, r.text
        r = c.post(lid, "/service/register", {"cluster_id": 1, "name": "ALLOCATOR",
                                              "host": "http://127.0.0.1:9100", "idc": "z0",
                                              "timeout": 600})
        assert r.status_code == 200, r.text
        follower = next(i for i in (1, 2, 3) if i != lid)
        b = Browser(str(tmp_path))
        con = Console(b, str(tmp_path))
        con.open(c.url(follower, "/"))
        assert con.text("#served-by") == f"node {follower} · follower"
        assert con.text("#served-addr") == "@ " + c.http(follower)

        # ---- membership: add a learner through the form, served by a follower --------------
        c.start(4)
        con.fill({"#add-id": 4, "#add-raft": c.raft_addr(4), "#add-http": c.http(4),
                  "#add-type": 1})
        con.submit("member-add")
        con.confirm("node 4 (%s) will join as a learner" % c.raft_addr(4))
        p = wait(lambda: peers(c, c.wait_leader()).get(4), what="node 4 in /stat")
        assert p["isLearner"] is True and p["host"] == c.raft_addr(4)
        msg = con.wait_msg("#member-msg", "has caught up")
        assert "node 4 has caught up" in msg and "learner" in msg
        lstat = c.stat(c.wait_leader())["raft_status"]
        wait(lambda: peers(c, c.wait_leader())[4]["match"] >= lstat["commit"], what="caught up")
        b.wait("[...document.querySelectorAll('#members tbody tr')].some(tr => "
               "tr.dataset.id === '4' && tr.children[1].textContent === 'learner' && "
               "tr.children[6].textContent === '0')")

        # promote it: the dialog says what the cluster then tolerates
        b.click("button[data-act=promote][data-id='4']")
        con.confirm("node 4 will start voting; 4 voter(s): the cluster then tolerates 1 failure(s)")
        wait(lambda: peers(c, c.wait_leader())[4]["isLearner"] is False, what="promoted in /stat")
        con.wait_msg("#member-msg", "node 4 votes now")

        # the server's refusal is shown as the server worded it: the leader cannot be removed
        lid = c.wait_leader()
        b.wait(f"!!document.querySelector('button[data-act=remove][data-id=\"{lid}\"]')")
        b.click(f"button[data-act=remove][data-id='{lid}']")
        con.confirm(f"node {lid} will stop voting and leave the cluster")
        con.wait_msg("#member-msg", "failed: 400: Request Not Allow")
        assert 4 in peers(c, lid) and lid in peers(c, lid)

        # transfer leadership to node 4 (raft may give a transfer up; an operator asks again)
        end = time.time() + 30
        while c.leader() != 4:
            assert time.time() < end, "leadership did not move to node 4"
            b.wait("!!document.querySelector('button[data-act=transfer][data-id=\"4\"]')")
            b.click("button[data-act=transfer][data-id='4']")
            con.confirm("node 4 will become the leader")
            t = time.time() + 5
            while c.leader() != 4 and time.time() < t:
                time.sleep(0.1)
        assert c.stat(follower)["leader_host"] == c.http(4)
        con.wait_msg("#member-msg", "node 4 is the leader")

        # remove another member (neither the leader nor the node serving the page)
        victim = next(i for i in (1, 2, 3) if i != follower)
        b.wait(f"!!document.querySelector('button[data-act=remove][data-id=\"{victim}\"]')")
        b.click(f"button[data-act=remove][data-id='{victim}']")
        con.confirm(f"node {victim} will stop voting and leave the cluster; 3 voter(s): "
                    "the cluster then tolerates 1 failure(s)")
        wait(lambda: victim not in peers(c, 4), what="member removed in /stat")
        assert set(peers(c, 4)) == {1, 2, 3, 4} - {victim}
        con.wait_msg("#member-msg", f"node {victim} left the configuration")
        b.wait(f"document.querySelectorAll('#members tbody tr').length === 3")
        shots.append(con.shot("members.png"))

        # ---- disks: page through them, filter, make one readonly ---------------------------
        all_disks = c.get(4, "/disk/list?count=200").json()["disks"]
        ids = sorted(d["disk_id"] for d in all_disks)
        assert len(ids) == 12
        con.view("disks", "document.querySelectorAll('#disks tbody tr[data-id]').length > 0")
        con.fill({"#disk-count": 5})
        ready = loaded("disks")
        con.submit("disk-filter")
        b.wait(ready)
        seen = page_disks(con)
        assert seen == ids[:5]
        for want in (ids[5:10], ids[10:]):
            ready = loaded("disks")
            b.click("#disk-next")
            b.wait(ready)
            assert page_disks(con) == want
        assert b.eval("document.getElementById('disk-next').disabled")
        ready = loaded("disks")
        b.click("#disk-prev")
        b.wait(ready)
        assert page_disks(con) == ids[5:10]
        host = all_disks[0]["host"]
        on_host = sorted(d["disk_id"] for d in all_disks if d["host"] == host)
        con.fill({"#disk-host": host, "#disk-count": 10})
        ready = loaded("disks")
        con.submit("disk-filter")
        b.wait(ready)
        assert page_disks(con) == on_host and len(on_host) == 4
        assert all(r[3] == host for r in con.rows("disks"))
        rack = all_disks[0]["rack"]
        con.fill({"#disk-host": "", "#disk-idc": "z0", "#disk-rack": rack})
        ready = loaded("disks")
        con.submit("disk-filter")
        b.wait(ready)
        want = sorted(d["disk_id"] for d in all_disks if d["rack"] == rack)
        assert sorted(page_disks(con)) == want and all(r[2] == rack for r in con.rows("disks"))
        con.fill({"#disk-rack": "", "#disk-idc": "", "#disk-status": 2})  # broken: none
        ready = loaded("disks")
        con.submit("disk-filter")
        b.wait(ready)
        assert page_disks(con) == [] and "no disk matches" in con.text("#disks tbody")
        con.fill({"#disk-status": ""})
        ready = loaded("disks")
        con.submit("disk-filter")
        b.wait(ready)
        target = ids[0]
        b.click(f"button[data-act=readonly][data-id='{target}']")
        con.confirm(f"disk {target} takes no new chunks")
        con.wait_msg("#disk-msg", f"Make disk {target} readonly: done")
        assert c.get(follower, f"/disk/info?disk_id={target}").json()["readonly"] is True
        b.wait(f"document.querySelector('#disks tr[data-id=\"{target}\"]').children[6]"
               ".textContent === 'yes'")
        # a status change the server refuses: normal cannot skip to repairing
        other = ids[1]
        con.fill({f"select[data-id='{other}']": 3})
        b.click(f"button[data-act=set-status][data-id='{other}']")
        con.confirm(f"disk {other} (")
        msg = con.wait_msg("#disk-msg", "failed")
        assert f"Set disk {other} repairing failed: 913" in msg, msg
        assert c.get(4, f"/disk/info?disk_id={other}").json()["status"] == 1
        shots.append(con.shot("disks.png"))

        # ---- volumes: page, filter by status, lock and unlock one --------------------------
        vids = []
        marker = 0
        while True:
            page = c.get(4, f"/volume/list?marker={marker}&count=100").json()
            if not page or not page.get("volumes"):
                break
            vids += [v["vid"] for v in page["volumes"]]
            marker = page["marker"]
        assert len(vids) >= POOL
        con.view("volumes", "document.querySelectorAll('#vols tbody tr[data-vid]').length > 0")
        con.fill({"#vol-count": 5})
        ready = loaded("vols")
        con.submit("vol-filter")
        b.wait(ready)
        assert page_vids(con) == vids[:5]
        if len(vids) > 5:
            ready = loaded("vols")
            b.click("#vol-next")
            b.wait(ready)
            assert page_vids(con) == vids[5:10]
        con.fill({"#vol-status": 1})
        ready = loaded("vols")
        con.submit("vol-filter")
        b.wait(ready)
        shown = b.eval("[...document.querySelectorAll('#vols tbody tr[data-vid]')]"
                       ".map(tr => [Number(tr.dataset.vid), tr.dataset.status])")
        assert shown and all(s == "idle" for _, s in shown)
        vid = shown[0][0]
        assert c.get(4, f"/volume/get?vid={vid}").json()["status"] == 1
        b.click(f"button[data-act=lock][data-vid='{vid}']")
        con.confirm(f"volume {vid} is locked for migration")
        con.wait_msg("#vol-msg", f"volume {vid} is lock now")
        assert c.get(follower, f"/volume/get?vid={vid}").json()["status"] == 3
        b.wait(f"document.getElementById('vol-detail').dataset.vid === '{vid}'")
        units = c.get(4, f"/volume/get?vid={vid}").json()["units"]
        urows = con.rows("vol-units")
        assert [int(r[2]) for r in urows] == [u["disk_id"] for u in units]
        assert [r[3] for r in urows] == [u["host"] for u in units]
        assert all(r[4].startswith("z0 / rack") for r in urows)
        # the idle filter no longer shows it; "lock" does, with its unlock button
        con.fill({"#vol-status": 3})
        ready = loaded("vols")
        con.submit("vol-filter")
        b.wait(ready)
        assert vid in page_vids(con)
        shots.append(con.shot("volumes.png"))
        b.click(f"button[data-act=unlock][data-vid='{vid}']")
        con.confirm(f"volume {vid} starts unlocking")
        b.wait(f"/volume {vid} is (unlocking|idle) now|failed/.test("
               "document.getElementById('vol-msg').textContent)")
        assert "failed" not in con.text("#vol-msg"), con.text("#vol-msg")
        wait(lambda: c.get(4, f"/volume/get?vid={vid}").json()["status"] in (1, 4),
             what="unlocked")
        wait(lambda: c.get(4, f"/volume/get?vid={vid}").json()["status"] == 1,
             what="idle again after the unlock task")

        # ---- services, KV, config ----------------------------------------------------------
        con.view("services", "document.querySelectorAll('#svcs tbody tr').length > 0 && "
                 "document.getElementById('svc-msg').textContent !== ''")
        assert ["ALLOCATOR", "http://127.0.0.1:9100", "z0", "1"] in con.rows("svcs")
        shots.append(con.shot("services.png"))
        con.view("kv", "document.querySelectorAll('#kvs tbody tr[data-key]').length > 0")
        con.fill({"#kv-prefix": "console/"})
        con.submit("kv-filter")
        b.wait("document.querySelectorAll('#kvs tbody tr[data-key]').length === 2")
        kv = {r[0]: r[1:] for r in con.rows("kvs")}
        assert kv["console/text"] == ["text", "hello console", "13"]
        assert kv["console/bin"] == ["hex", "00 01 ff", "3"]
        con.fill({"#kv-count": 5})
        con.submit("kv-filter")
        shots.append(con.shot("kv.png"))
        con.view("config", "document.querySelectorAll('#cfgs tbody tr[data-key]').length > 3")
        cfg = {r[0]: r[1] for r in con.rows("cfgs")}
        assert cfg == c.get(4, "/config/list").json()["configs"]
        shots.append(con.shot("config.png"))

        # ---- history: this node's charts have points; the leader's show replication lag -----
        con.view("history-charts", "document.querySelectorAll('#charts canvas').length === 5")
        b.wait("Number(document.getElementById('charts').dataset.samples) >= 2", timeout=30)
        pts = b.eval("[...document.querySelectorAll('#charts canvas')]"
                     ".map(c => [c.dataset.title, Number(c.dataset.points)])")
        assert all(n >= 2 for title, n in pts if title != "replication lag"), pts
        h = wait(lambda: (lambda h: any(s["leader"] == 4 for s in h["samples"]) and h)(
            c.get(follower, "/dashboard/history").json()), what="a sample under leader 4")
        assert h["capacity"] == 720 and h["interval_s"] == 5 and h["bytes"] < 140000
        assert any(s["writes_per_s"] > 0 for s in h["samples"]), h["samples"]
        assert any(s["commit_per_s"] > 0 for s in h["samples"])
        assert all(s["lag"] == {} for s in h["samples"] if not s["is_leader"])
        shots.append(con.shot("history-follower.png"))
        con.open(c.url(4, "/#history-charts"))
        b.wait("Number(document.getElementById('charts').dataset.samples) >= 2", timeout=30)
        lag = b.eval("Number(document.querySelector('#charts canvas[data-title=\"replication "
                     "lag\"]').dataset.points)")
        assert lag > 0
        assert any(e["leader"] == 4 for e in c.get(4, "/dashboard/history").json()[
            "leader_changes"])
        shots.append(con.shot("history.png"))
        print(f"\nconsole screenshots in {tmp_path}: {', '.join(os.path.basename(p) for p in shots)}"
              f" (test took {time.time() - t_start:.1f} s)")
        copy_shots(shots)
    finally:
        if b:
            b.close()
        if sim.proc.poll() is None:
            assert sim.stop() == 0


def test_console_auth(make_cluster, tmp_path):
    """With auth on: an action without the secret fails and the page says why; with a wrong
    secret it says the token was refused; with the right one the action carries a valid token."""
    assert CHROMIUM, "chromium is required (scripts/deps.sh installs it)"
    secret = "console-secret"
    c = make_cluster(nodes=3, extra={"auth": {"enable_auth": True, "secret": secret}})
    lid = c.wait_leader()
    b = Browser(str(tmp_path))
    try:
        con = Console(b, str(tmp_path))
        b.call("Page.navigate", url=c.url(lid, "/#config"))
        b.wait("document.getElementById('auth') && !document.getElementById('auth').hidden")
        con.wait_msg("#cfg-msg", "this cluster requires a token: enter its secret above")
        # an action without the secret: the write fails with the reason, nothing changed
        con.view("overview", "true")
        con.fill({"#add-id": 9, "#add-raft": "127.0.0.1:1", "#add-type": 1})
        con.submit("member-add")
        con.confirm("node 9 (127.0.0.1:1) will join as a learner")
        msg = con.wait_msg("#member-msg", "Add node 9 failed")
        assert "this cluster requires a token: enter its secret above" in msg
        assert 9 not in peers(c, lid)
        shots = [con.shot("auth-refused.png")]
        # a wrong secret: the page says the token was refused
        b.eval("document.getElementById('auth-secret').value = 'wrong'; "
               "document.getElementById('auth').requestSubmit(); true")
        con.view("config", "true")
        con.wait_msg("#cfg-msg", "the cluster refused this page's token (403")
        # the right one: reads and the transfer go through, signed
        b.eval(f"document.getElementById('auth-secret').value = {js(secret)}; "
               "document.getElementById('auth').requestSubmit(); true")
        b.wait("document.body.dataset.loaded === '1'")
        con.wait_msg("#cfg-msg", "key(s)")
        con.view("overview", "document.querySelectorAll('#members tbody tr').length === 3")
        target = next(i for i in (1, 2, 3) if i != lid)
        end = time.time() + 30
        while c.leader() != target:
            assert time.time() < end, f"leadership did not move to node {target}"
            b.wait(f"!!document.querySelector('button[data-act=transfer][data-id=\"{target}\"]')")
            b.click(f"button[data-act=transfer][data-id='{target}']")
            con.confirm(f"node {target} will become the leader")
            t = time.time() + 5
            while c.leader() != target and time.time() < t:
                time.sleep(0.1)
        con.wait_msg("#member-msg", f"node {target} is the leader")
        assert "failed" not in con.text("#member-msg")
        shots.append(con.shot("auth-ok.png"))
        print(f"\nconsole auth screenshots in {tmp_path}")
        copy_shots(shots)
    finally:
        b.close()
